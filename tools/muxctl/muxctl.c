/*
 * muxctl.c: the operator's tool for muxd's control socket.
 *
 * One request per connection (docs/control-protocol.md): muxctl writes
 * "FORMAT COMMAND [ARG ...]\n"; muxd answers with a body and a last line
 * that is exactly "OK" or "FAIL reason", then closes. Commands come from a
 * token table in which any unique prefix of a keyword will do ("st" is
 * status), and argument counts are checked before anything is sent, so a
 * typo never reaches the daemon.
 *
 * Plain blocking I/O: one short request, one reply, bounded by a timeout.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MUXCTL_SOCKET_DEFAULT	"/var/run/mux/control.sock"
#define MUXCTL_SOCKET_ENV	"MUX_CONTROL"
#define MUXCTL_TIMEOUT_MS	10000		/* connect, send and reply */
#define MUXCTL_LINE_MAX		1024		/* request line, '\n' included */
#define MUXCTL_REPLY_MAX	(64u << 20)	/* a runaway reply is an error */
#define MUXCTL_REPLY_CHUNK	16384
#define MUXCTL_ARGS_ANY		-1		/* bounded by MUXCTL_LINE_MAX */
#define MUXCTL_HELP_WIDTH	38

/* Arguments from this index on must be KEY=VALUE (-1: none). */
#define MUXCTL_KV_NONE		-1

struct muxctl_cmd {
	const char	*words[2];	/* words[1] NULL: a one-word command */
	int		 min_args;
	int		 max_args;
	int		 kv_from;
	const char	*args;
	const char	*help;
};

static const struct muxctl_cmd muxctl_cmds[] = {
	{ { "status", NULL }, 0, 0, MUXCTL_KV_NONE, "",
	  "epoch, uptime, agents, SVMs, rates, ring, drops, alarms" },
	{ { "agents", NULL }, 0, 0, MUXCTL_KV_NONE, "",
	  "agent connections" },
	{ { "svms", NULL }, 0, 0, MUXCTL_KV_NONE, "",
	  "SVM entries and their state" },
	{ { "metrics", NULL }, 0, 0, MUXCTL_KV_NONE, "",
	  "metrics in Prometheus text format" },
	{ { "log", "level" }, 1, 2, MUXCTL_KV_NONE, "LEVEL [SUBSYSTEM]",
	  "off, error, warn, info, debug or trace" },
	{ { "reload", NULL }, 0, 0, MUXCTL_KV_NONE, "",
	  "re-read the configuration file" },
	{ { "svm", "add" }, 2, MUXCTL_ARGS_ANY, 2,
	  "NAME ADDRESS [KEY=VALUE ...]", "add an SVM entry" },
	{ { "svm", "remove" }, 1, 1, MUXCTL_KV_NONE, "NAME",
	  "remove an SVM entry" },
	{ { "vm", "map" }, 3, 3, MUXCTL_KV_NONE, "CID UUID NAME",
	  "give a CID its VM identity" },
	{ { "vm", "event" }, 2, 2, MUXCTL_KV_NONE, "CID STATE",
	  "report a VM state seen by the host" },
	{ { "help", NULL }, 0, 0, MUXCTL_KV_NONE, "",
	  "this text" },
};
#define MUXCTL_NCMDS	(sizeof muxctl_cmds / sizeof muxctl_cmds[0])

static void
muxctl_usage_line(FILE *f)
{
	fprintf(f, "usage: muxctl [-s socket] [--json] command [argument ...]\n");
}

static void
muxctl_help(FILE *f)
{
	const struct muxctl_cmd	*c;
	char			 line[128];
	size_t			 i;

	muxctl_usage_line(f);
	fprintf(f, "\n"
	    "  -s socket   control socket (default: $" MUXCTL_SOCKET_ENV
	    " if set, else\n"
	    "              " MUXCTL_SOCKET_DEFAULT ")\n"
	    "  --json      ask muxd for JSON instead of text\n"
	    "  -h, --help  this text\n"
	    "\n"
	    "commands (a unique prefix of each word will do, \"st\" for "
	    "status):\n");
	for (i = 0; i < MUXCTL_NCMDS; i++) {
		c = &muxctl_cmds[i];
		snprintf(line, sizeof line, "%s%s%s%s%s", c->words[0],
		    c->words[1] != NULL ? " " : "",
		    c->words[1] != NULL ? c->words[1] : "",
		    *c->args != '\0' ? " " : "", c->args);
		fprintf(f, "  %-*s%s\n", MUXCTL_HELP_WIDTH, line, c->help);
	}
}

static void
muxctl_cmd_name(const struct muxctl_cmd *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", c->words[0],
	    c->words[1] != NULL ? " " : "",
	    c->words[1] != NULL ? c->words[1] : "");
}

/*
 * Resolve one typed word against the keywords at position depth (among the
 * commands whose first keyword is first, for depth 1). An exact keyword
 * wins over longer ones it is a prefix of ("svm" is not "svms").
 */
static const char *
muxctl_match(const char *word, int depth, const char *first, char *err,
    size_t errlen)
{
	const char	*cand[MUXCTL_NCMDS], *kw, *found = NULL;
	char		 list[256] = "";
	size_t		 ncand = 0, nmatch = 0, i, j, wlen = strlen(word);

	for (i = 0; i < MUXCTL_NCMDS; i++) {
		if (depth == 1 && strcmp(muxctl_cmds[i].words[0], first) != 0)
			continue;
		if ((kw = muxctl_cmds[i].words[depth]) == NULL)
			continue;
		for (j = 0; j < ncand; j++)
			if (strcmp(cand[j], kw) == 0)
				break;
		if (j == ncand)
			cand[ncand++] = kw;
	}
	for (i = 0; i < ncand; i++) {
		if (strcmp(cand[i], word) == 0)
			return cand[i];
	}
	for (i = 0; i < ncand; i++) {
		if (wlen == 0 || strncmp(cand[i], word, wlen) != 0)
			continue;
		found = cand[i];
		nmatch++;
		if (*list != '\0')
			strncat(list, ", ", sizeof list - strlen(list) - 1);
		strncat(list, cand[i], sizeof list - strlen(list) - 1);
	}
	if (nmatch == 1)
		return found;

	if (nmatch == 0) {
		for (i = 0; i < ncand; i++) {
			if (i > 0)
				strncat(list, ", ", sizeof list -
				    strlen(list) - 1);
			strncat(list, cand[i], sizeof list - strlen(list) - 1);
		}
		if (depth == 0)
			snprintf(err, errlen, "unknown command \"%s\" "
			    "(try muxctl help)", word);
		else
			snprintf(err, errlen, "%s: unknown subcommand \"%s\" "
			    "(one of: %s)", first, word, list);
	} else
		snprintf(err, errlen, "\"%s\" is ambiguous: %s", word, list);
	return NULL;
}

/*
 * Map argv onto a command. Returns the command and sets *nwords to how many
 * of argv were keywords, or NULL with err set.
 */
static const struct muxctl_cmd *
muxctl_lookup(int argc, char **argv, int *nwords, char *err, size_t errlen)
{
	const char	*first, *second = NULL;
	char		 subs[128] = "";
	size_t		 i;
	int		 needs_second = 0;

	if ((first = muxctl_match(argv[0], 0, NULL, err, errlen)) == NULL)
		return NULL;
	for (i = 0; i < MUXCTL_NCMDS; i++) {
		if (strcmp(muxctl_cmds[i].words[0], first) != 0 ||
		    muxctl_cmds[i].words[1] == NULL)
			continue;
		needs_second = 1;
		if (*subs != '\0')
			strncat(subs, ", ", sizeof subs - strlen(subs) - 1);
		strncat(subs, muxctl_cmds[i].words[1],
		    sizeof subs - strlen(subs) - 1);
	}
	if (needs_second) {
		if (argc < 2) {
			snprintf(err, errlen, "%s: which one? (%s)", first,
			    subs);
			return NULL;
		}
		if ((second = muxctl_match(argv[1], 1, first, err,
		    errlen)) == NULL)
			return NULL;
	}
	for (i = 0; i < MUXCTL_NCMDS; i++) {
		if (strcmp(muxctl_cmds[i].words[0], first) != 0)
			continue;
		if (second == NULL || strcmp(muxctl_cmds[i].words[1],
		    second) == 0) {
			*nwords = second == NULL ? 1 : 2;
			return &muxctl_cmds[i];
		}
	}
	snprintf(err, errlen, "internal error: no command for %s", first);
	return NULL;
}

/*
 * The protocol separates words with single spaces and has no quoting, so
 * an argument may not be empty or hold blanks or control characters.
 */
static int
muxctl_check_args(const struct muxctl_cmd *c, int nargs, char **args,
    char *err, size_t errlen)
{
	char		name[32];
	const char	*s, *eq;
	int		i;

	muxctl_cmd_name(c, name, sizeof name);
	if (nargs < c->min_args ||
	    (c->max_args != MUXCTL_ARGS_ANY && nargs > c->max_args)) {
		snprintf(err, errlen, "usage: muxctl %s%s%s", name,
		    *c->args != '\0' ? " " : "", c->args);
		return -1;
	}
	for (i = 0; i < nargs; i++) {
		if (*args[i] == '\0') {
			snprintf(err, errlen, "%s: empty argument", name);
			return -1;
		}
		for (s = args[i]; *s != '\0'; s++) {
			if ((unsigned char)*s <= ' ' ||
			    (unsigned char)*s == 0x7f) {
				snprintf(err, errlen, "%s: argument \"%s\" "
				    "holds a blank or control character",
				    name, args[i]);
				return -1;
			}
		}
		if (c->kv_from != MUXCTL_KV_NONE && i >= c->kv_from) {
			eq = strchr(args[i], '=');
			if (eq == NULL || eq == args[i]) {
				snprintf(err, errlen, "%s: \"%s\" is not "
				    "KEY=VALUE", name, args[i]);
				return -1;
			}
		}
	}
	return 0;
}

static int
muxctl_build(char *line, size_t len, int json, const struct muxctl_cmd *c,
    int nargs, char **args)
{
	size_t	off;
	int	i, n;

	n = snprintf(line, len, "%s %s%s%s", json ? "json" : "text",
	    c->words[0], c->words[1] != NULL ? " " : "",
	    c->words[1] != NULL ? c->words[1] : "");
	if (n < 0 || (size_t)n >= len)
		return -1;
	off = (size_t)n;
	for (i = 0; i < nargs; i++) {
		n = snprintf(line + off, len - off, " %s", args[i]);
		if (n < 0 || (size_t)n >= len - off)
			return -1;
		off += (size_t)n;
	}
	if (off + 1 >= len)
		return -1;
	line[off++] = '\n';
	line[off] = '\0';
	return (int)off;
}

static uint64_t
muxctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * SO_SNDTIMEO also bounds a Unix connect that waits on a full backlog, so
 * a wedged daemon cannot hang the operator's shell.
 */
static int
muxctl_connect(const char *path)
{
	struct sockaddr_un	sun;
	struct timeval		tv = {
		.tv_sec = MUXCTL_TIMEOUT_MS / 1000,
		.tv_usec = (MUXCTL_TIMEOUT_MS % 1000) * 1000,
	};
	int			fd, saved;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		saved = errno;
		close(fd);
		errno = (saved == EAGAIN || saved == EWOULDBLOCK) ?
		    ETIMEDOUT : saved;
		return -1;
	}
	return fd;
}

static int
muxctl_send(int fd, const char *buf, size_t len)
{
	size_t	off;
	ssize_t	n;

	for (off = 0; off < len; off += (size_t)n) {
		/* MSG_NOSIGNAL: a daemon that hung up is a message, not
		 * a silent death by SIGPIPE. */
		n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR) {
				n = 0;
				continue;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				errno = ETIMEDOUT;
			return -1;
		}
	}
	return 0;
}

/* Read until EOF or the deadline. 0, or -1 with errno (ETIMEDOUT, EFBIG). */
static int
muxctl_recv(int fd, uint64_t deadline, char **bufp, size_t *lenp)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	char		*buf = NULL, *nbuf;
	size_t		 len = 0, size = 0;
	uint64_t	 now;
	ssize_t		 n;
	int		 r;

	for (;;) {
		if ((now = muxctl_now_ms()) >= deadline) {
			errno = ETIMEDOUT;
			goto fail;
		}
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r == -1 && errno != EINTR)
			goto fail;
		if (r <= 0)
			continue;
		if (size - len < MUXCTL_REPLY_CHUNK) {
			if (size >= MUXCTL_REPLY_MAX) {
				errno = EFBIG;
				goto fail;
			}
			size = size == 0 ? MUXCTL_REPLY_CHUNK * 4 : size * 2;
			if ((nbuf = realloc(buf, size)) == NULL)
				goto fail;
			buf = nbuf;
		}
		n = read(fd, buf + len, size - len);
		if (n == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*bufp = buf;
	*lenp = len;
	return 0;

fail:
	free(buf);
	return -1;
}

/*
 * Everything before the last line is body and goes to stdout; the last line
 * decides the exit status. Its newline is optional: a reply cut right
 * after "OK" still said OK.
 */
static int
muxctl_finish(const char *buf, size_t len, const char *path)
{
	const char	*last, *nl;
	size_t		 end = len, body, llen;

	if (end > 0 && buf[end - 1] == '\n')
		end--;
	nl = end > 0 ? memrchr(buf, '\n', end) : NULL;
	body = nl != NULL ? (size_t)(nl - buf) + 1 : 0;
	last = buf + body;
	llen = end - body;

	if (body > 0 && fwrite(buf, 1, body, stdout) != body)
		goto out_err;

	if (len > 0 && llen == 2 && memcmp(last, "OK", 2) == 0) {
		if (fflush(stdout) == EOF)
			goto out_err;
		return 0;
	}
	if (llen >= 4 && memcmp(last, "FAIL", 4) == 0 &&
	    (llen == 4 || last[4] == ' ')) {
		fflush(stdout);
		if (llen > 5)
			fprintf(stderr, "muxctl: %.*s\n", (int)(llen - 5),
			    last + 5);
		else
			fprintf(stderr, "muxctl: command failed\n");
		return 1;
	}

	/* Not a final line: it was body, and the reply was cut short. */
	if (len - body > 0 && fwrite(last, 1, len - body, stdout) != len - body)
		goto out_err;
	fflush(stdout);
	if (len == 0)
		fprintf(stderr, "muxctl: %s: connection closed without a "
		    "reply\n", path);
	else
		fprintf(stderr, "muxctl: %s: reply ended without OK or FAIL\n",
		    path);
	return 1;

out_err:
	fprintf(stderr, "muxctl: writing output: %s\n", strerror(errno));
	return 1;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json",	no_argument,		NULL, 'j' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "socket",	required_argument,	NULL, 's' },
		{ NULL,		0,			NULL, 0 },
	};
	const struct muxctl_cmd	*c;
	const char		*path = NULL, *env;
	char			 err[512], line[MUXCTL_LINE_MAX + 1];
	char			*reply;
	size_t			 rlen;
	int			 ch, json = 0, nwords, nargs, len, fd, rv;

	/*
	 * '+': options end at the command, whose arguments are its own.
	 * ':' and opterr = 0: every complaint starts with "muxctl:".
	 */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:hs:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 's':
			path = optarg;
			break;
		case 'h':
			muxctl_help(stdout);
			return 0;
		default:
			/*
			 * A long option has been stepped over by optind; a
			 * short one may sit inside a cluster ("-xs").
			 */
			if (optind > 1 &&
			    strncmp(argv[optind - 1], "--", 2) == 0)
				snprintf(err, sizeof err, "%s",
				    argv[optind - 1]);
			else
				snprintf(err, sizeof err, "-%c", optopt);
			fprintf(stderr, "muxctl: %s: %s\n", err, ch == ':' ?
			    "needs an argument" : "bad option");
			muxctl_usage_line(stderr);
			return 1;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		muxctl_usage_line(stderr);
		fprintf(stderr, "muxctl help lists the commands\n");
		return 1;
	}

	if ((c = muxctl_lookup(argc, argv, &nwords, err, sizeof err)) ==
	    NULL) {
		fprintf(stderr, "muxctl: %s\n", err);
		return 1;
	}
	nargs = argc - nwords;
	if (muxctl_check_args(c, nargs, argv + nwords, err, sizeof err) ==
	    -1) {
		fprintf(stderr, "muxctl: %s\n", err);
		return 1;
	}
	if (strcmp(c->words[0], "help") == 0) {
		muxctl_help(stdout);
		return 0;
	}
	if ((len = muxctl_build(line, sizeof line, json, c, nargs,
	    argv + nwords)) == -1) {
		fprintf(stderr, "muxctl: request longer than %d bytes\n",
		    MUXCTL_LINE_MAX);
		return 1;
	}

	/* -s wins over the environment, which wins over the default. */
	if (path == NULL) {
		env = getenv(MUXCTL_SOCKET_ENV);
		path = env != NULL && *env != '\0' ? env :
		    MUXCTL_SOCKET_DEFAULT;
	}
	if ((fd = muxctl_connect(path)) == -1) {
		fprintf(stderr, "muxctl: cannot connect to %s: %s "
		    "(is muxd running?)\n", path, strerror(errno));
		return 1;
	}
	if (muxctl_send(fd, line, (size_t)len) == -1) {
		fprintf(stderr, "muxctl: %s: sending request: %s\n", path,
		    strerror(errno));
		close(fd);
		return 1;
	}
	if (muxctl_recv(fd, muxctl_now_ms() + MUXCTL_TIMEOUT_MS, &reply,
	    &rlen) == -1) {
		if (errno == ETIMEDOUT)
			fprintf(stderr, "muxctl: %s: no complete reply within "
			    "%d s\n", path, MUXCTL_TIMEOUT_MS / 1000);
		else if (errno == EFBIG)
			fprintf(stderr, "muxctl: %s: reply larger than %u "
			    "bytes\n", path, MUXCTL_REPLY_MAX);
		else
			fprintf(stderr, "muxctl: %s: reading reply: %s\n",
			    path, strerror(errno));
		close(fd);
		return 1;
	}
	close(fd);
	rv = muxctl_finish(reply, rlen, path);
	free(reply);
	return rv;
}
