/*
 * svm.c: mux-svm start-up, options, listener, signals and the loop.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "muxclock.h"
#include "svm.h"

#define SVM_TICK_MS		1000	/* progress line and record flush */
#define SVM_RECORD_BUF		(1u << 20)

struct event_base	*svm_base;
struct svm_options	 svm_opt;
struct svm_stats	 svm_stats;
struct svm_conns	 svm_conns = TAILQ_HEAD_INITIALIZER(svm_conns);
struct frame_arena	 svm_arena;
FILE			*svm_record;

static struct evconnlistener	*svm_listener;
static struct event		*svm_reap_ev;
static struct event		*svm_tick_ev;
static struct event		*svm_duration_ev;
static struct event		*svm_sigterm_ev;
static struct event		*svm_sigint_ev;
static int			 svm_progress;	/* live line on stderr */
static int			 svm_progress_shown;

static void __attribute__((noreturn))
usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: mux-svm --listen HOST:PORT --service-id ID [--instance-id ID]\n"
	    "               [--classes file,network,process,login,vm] [--cids 3,4,...]\n"
	    "               [--verdicts] [--window N]\n"
	    "               [--policy allow|deny-path:GLOB|delay:MS|scan:clamd:SOCKET]\n"
	    "               (--cert FILE --key FILE --ca FILE [--client-name NAME] |\n"
	    "                --tls-off)\n"
	    "               [--json] [--state FILE] [--record FILE]\n"
	    "               [--ack-delay-ms N] [--process-us N] [--duration S]\n"
	    "               [--max-frame BYTES] [--port-file FILE] [--exit-on-reject]\n"
	    "               [--read-files DIR] [--reads N] [--scans N]\n"
	    "               [--remediate delete|quarantine|deny_access] [--quiet]\n");
	exit(status);
}

uint64_t
svm_now_ms(void)
{
	return svm_mono_ns() / 1000000u;
}

uint64_t
svm_mono_ns(void)
{
	return muxclock_mono_ns();
}

uint64_t
svm_real_ns(void)
{
	return muxclock_real_ns();
}

/* Log lines must not be glued to the end of a live progress line. */
static void
svm_vlog(const char *fmt, va_list ap)
{
	if (svm_progress_shown) {
		fputs("\r\033[K", stderr);
		svm_progress_shown = 0;
	}
	fputs("mux-svm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
svm_log(const char *fmt, ...)
{
	va_list ap;

	if (svm_opt.quiet)
		return;
	va_start(ap, fmt);
	svm_vlog(fmt, ap);
	va_end(ap);
}

void
svm_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	svm_vlog(fmt, ap);
	va_end(ap);
}

void
svm_fatalx(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	svm_vlog(fmt, ap);
	va_end(ap);
	exit(status);
}

static uint64_t
parse_num(const char *s, uint64_t min, uint64_t max, const char *what)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		svm_fatalx(2, "%s: not a number: %s", what, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		svm_fatalx(2, "%s: out of range (%" PRIu64 "..%" PRIu64 "): %s",
		    what, min, max, s);
	return v;
}

static void
parse_cids(const char *s)
{
	char *copy, *tok, *save = NULL;

	if ((copy = strdup(s)) == NULL)
		svm_fatalx(1, "out of memory");
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (svm_opt.ncids == SVM_CIDS_MAX)
			svm_fatalx(2, "--cids: more than %d", SVM_CIDS_MAX);
		svm_opt.cids[svm_opt.ncids++] =
		    (uint32_t)parse_num(tok, 1, UINT32_MAX, "--cids");
	}
	free(copy);
	if (svm_opt.ncids == 0)
		svm_fatalx(2, "--cids: empty list");
}

static void
set_id(char *dst, const char *src, const char *what)
{
	size_t n = strlen(src);

	if (n == 0 || n >= SVM_ID_MAX)
		svm_fatalx(2, "%s: must be 1..%d bytes", what, SVM_ID_MAX - 1);
	memcpy(dst, src, n + 1);
}

/* TLS (the default) needs our certificate, its key and the MUX's CA. */
static void
parse_tls_options(void)
{
	char missing[64] = "";

	if (svm_opt.tls_off) {
		if (svm_opt.tls_cert != NULL || svm_opt.tls_key != NULL ||
		    svm_opt.tls_ca != NULL || svm_opt.tls_client_name != NULL)
			svm_fatalx(2, "--tls-off: --cert, --key, --ca and "
			    "--client-name are for TLS; drop them or --tls-off");
		return;
	}
	if (svm_opt.tls_cert == NULL)
		strcat(missing, " --cert");
	if (svm_opt.tls_key == NULL)
		strcat(missing, " --key");
	if (svm_opt.tls_ca == NULL)
		strcat(missing, " --ca");
	if (missing[0] != '\0')
		svm_fatalx(2, "TLS is on by default and needs --cert FILE --key "
		    "FILE --ca FILE (missing:%s); --tls-off for plain TCP",
		    missing);
}

enum {
	OPT_LISTEN = 256, OPT_SERVICE_ID, OPT_INSTANCE_ID, OPT_CLASSES,
	OPT_CIDS, OPT_VERDICTS, OPT_WINDOW, OPT_POLICY, OPT_TLS_OFF, OPT_JSON,
	OPT_STATE, OPT_RECORD, OPT_ACK_DELAY, OPT_PROCESS_US, OPT_DURATION,
	OPT_QUIET, OPT_MAX_FRAME, OPT_PORT_FILE, OPT_EXIT_ON_REJECT, OPT_HELP,
	OPT_READ_FILES, OPT_READS, OPT_SCANS, OPT_REMEDIATE, OPT_CERT, OPT_KEY,
	OPT_CA, OPT_CLIENT_NAME,
};

static const struct option svm_longopts[] = {
	{ "listen",		required_argument, NULL, OPT_LISTEN },
	{ "service-id",		required_argument, NULL, OPT_SERVICE_ID },
	{ "instance-id",	required_argument, NULL, OPT_INSTANCE_ID },
	{ "classes",		required_argument, NULL, OPT_CLASSES },
	{ "cids",		required_argument, NULL, OPT_CIDS },
	{ "verdicts",		no_argument,	   NULL, OPT_VERDICTS },
	{ "window",		required_argument, NULL, OPT_WINDOW },
	{ "policy",		required_argument, NULL, OPT_POLICY },
	{ "tls-off",		no_argument,	   NULL, OPT_TLS_OFF },
	{ "cert",		required_argument, NULL, OPT_CERT },
	{ "key",		required_argument, NULL, OPT_KEY },
	{ "ca",			required_argument, NULL, OPT_CA },
	{ "client-name",	required_argument, NULL, OPT_CLIENT_NAME },
	{ "json",		no_argument,	   NULL, OPT_JSON },
	{ "state",		required_argument, NULL, OPT_STATE },
	{ "record",		required_argument, NULL, OPT_RECORD },
	{ "ack-delay-ms",	required_argument, NULL, OPT_ACK_DELAY },
	{ "process-us",		required_argument, NULL, OPT_PROCESS_US },
	{ "duration",		required_argument, NULL, OPT_DURATION },
	{ "quiet",		no_argument,	   NULL, OPT_QUIET },
	{ "max-frame",		required_argument, NULL, OPT_MAX_FRAME },
	{ "port-file",		required_argument, NULL, OPT_PORT_FILE },
	{ "exit-on-reject",	no_argument,	   NULL, OPT_EXIT_ON_REJECT },
	{ "read-files",		required_argument, NULL, OPT_READ_FILES },
	{ "reads",		required_argument, NULL, OPT_READS },
	{ "scans",		required_argument, NULL, OPT_SCANS },
	{ "remediate",		required_argument, NULL, OPT_REMEDIATE },
	{ "help",		no_argument,	   NULL, OPT_HELP },
	{ NULL,			0,		   NULL, 0 }
};

static void
parse_options(int argc, char **argv)
{
	struct sockaddr_un sun;
	char err[256], host[200];
	int ch;

	svm_opt.classes = WIRE_CLASS_ALL;
	svm_opt.max_frame = FRAME_SVM_MAX_DEFAULT;
	svm_opt.policy.kind = SVM_POLICY_ALLOW;
	svm_opt.reads = SVM_READS_DEFAULT;
	svm_opt.scans = SVM_SCANS_DEFAULT;

	while ((ch = getopt_long(argc, argv, "", svm_longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_LISTEN:
			svm_opt.listen = optarg;
			break;
		case OPT_SERVICE_ID:
			set_id(svm_opt.service_id, optarg, "--service-id");
			break;
		case OPT_INSTANCE_ID:
			set_id(svm_opt.instance_id, optarg, "--instance-id");
			break;
		case OPT_CLASSES:
			if (wire_classes_parse(optarg, &svm_opt.classes) != 0 ||
			    svm_opt.classes == 0)
				svm_fatalx(2, "--classes: bad list: %s "
				    "(file,network,process,login,vm)", optarg);
			break;
		case OPT_CIDS:
			parse_cids(optarg);
			break;
		case OPT_VERDICTS:
			svm_opt.verdicts = 1;
			break;
		case OPT_WINDOW:
			svm_opt.window = (uint32_t)parse_num(optarg, 0,
			    UINT32_MAX, "--window");
			break;
		case OPT_POLICY:
			if (svm_policy_parse(optarg, &svm_opt.policy, err,
			    sizeof(err)) != 0)
				svm_fatalx(2, "--policy: %s", err);
			break;
		case OPT_TLS_OFF:
			svm_opt.tls_off = 1;
			break;
		case OPT_CERT:
			svm_opt.tls_cert = optarg;
			break;
		case OPT_KEY:
			svm_opt.tls_key = optarg;
			break;
		case OPT_CA:
			svm_opt.tls_ca = optarg;
			break;
		case OPT_CLIENT_NAME:
			if (*optarg == '\0')
				svm_fatalx(2, "--client-name: empty name");
			svm_opt.tls_client_name = optarg;
			break;
		case OPT_JSON:
			svm_opt.json = 1;
			break;
		case OPT_STATE:
			svm_opt.state_path = optarg;
			break;
		case OPT_RECORD:
			svm_opt.record_path = optarg;
			break;
		case OPT_ACK_DELAY:
			svm_opt.ack_delay_ms = parse_num(optarg, 0, 3600000,
			    "--ack-delay-ms");
			break;
		case OPT_PROCESS_US:
			svm_opt.process_us = parse_num(optarg, 0, 10000000,
			    "--process-us");
			break;
		case OPT_DURATION:
			svm_opt.duration_s = parse_num(optarg, 0, 86400 * 365,
			    "--duration");
			break;
		case OPT_QUIET:
			svm_opt.quiet = 1;
			break;
		case OPT_MAX_FRAME:
			svm_opt.max_frame = (uint32_t)parse_num(optarg, 1024,
			    1u << 30, "--max-frame");
			break;
		case OPT_PORT_FILE:
			svm_opt.port_file = optarg;
			break;
		case OPT_EXIT_ON_REJECT:
			svm_opt.exit_on_reject = 1;
			break;
		case OPT_READ_FILES:
			if (*optarg == '\0')
				svm_fatalx(2, "--read-files: empty path");
			svm_opt.read_dir = optarg;
			break;
		case OPT_READS:
			svm_opt.reads = (uint32_t)parse_num(optarg, 1,
			    SVM_READS_MAX, "--reads");
			break;
		case OPT_SCANS:
			svm_opt.scans = (uint32_t)parse_num(optarg, 1,
			    SVM_SCANS_MAX, "--scans");
			break;
		case OPT_REMEDIATE:
			if (svm_policy_remediate_parse(optarg,
			    &svm_opt.remediate) != 0)
				svm_fatalx(2, "--remediate: want delete, "
				    "quarantine or deny_access: %s", optarg);
			break;
		case OPT_HELP:
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if (svm_opt.listen == NULL || svm_opt.service_id[0] == '\0')
		usage(2);
	parse_tls_options();
	if (svm_opt.instance_id[0] == '\0') {
		if (gethostname(host, sizeof(host)) != 0)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(svm_opt.instance_id, sizeof(svm_opt.instance_id),
		    "%s-%ld", host, (long)getpid());
	}
	if (svm_opt.read_dir != NULL &&
	    !(svm_opt.classes & (1u << MUX__EVENT_CLASS__FILE)))
		svm_fatalx(2, "--read-files: --classes must include file");
	if (svm_opt.policy.kind == SVM_POLICY_SCAN) {
		if (strlen(svm_opt.policy.clamd_path) >= sizeof(sun.sun_path))
			svm_fatalx(2, "--policy scan:clamd: socket path longer "
			    "than %zu bytes", sizeof(sun.sun_path) - 1);
		if (!svm_opt.verdicts)
			svm_warn("--policy scan without --verdicts: "
			    "nothing is scanned");
	}
	if (svm_opt.remediate.kind != 0 && !svm_opt.verdicts)
		svm_warn("--remediate without --verdicts: nothing is denied");
}

/* HOST:PORT or [HOST]:PORT; HOST may be a name. Port 0 picks one. */
static struct evconnlistener *
listen_on(const char *spec, evconnlistener_cb cb)
{
	struct addrinfo hints, *res;
	struct evconnlistener *l;
	char host[256];
	const char *colon, *port, *h;
	size_t hlen;
	int error;

	if ((colon = strrchr(spec, ':')) == NULL || colon == spec)
		svm_fatalx(2, "--listen: want HOST:PORT: %s", spec);
	port = colon + 1;
	h = spec;
	hlen = (size_t)(colon - spec);
	if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		svm_fatalx(2, "--listen: bad host: %s", spec);
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	parse_num(port, 0, 65535, "--listen port");

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((error = getaddrinfo(host, port, &hints, &res)) != 0)
		svm_fatalx(1, "--listen %s: %s", spec, gai_strerror(error));
	/* Reusable so that a restarted SVM gets its port back at once. */
	l = evconnlistener_new_bind(svm_base, cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    -1, res->ai_addr, (int)res->ai_addrlen);
	freeaddrinfo(res);
	if (l == NULL)
		svm_fatalx(1, "cannot listen on %s: %s", spec, strerror(errno));
	return l;
}

static void
listener_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	svm_conn_accept(fd, sa, salen);
}

static void
listener_error_cb(struct evconnlistener *l, void *arg)
{
	int error = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends pass; the listener stays. */
	svm_warn("accept: %s", evutil_socket_error_to_string(error));
}

static void
announce_port(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	FILE *f;
	char tmp[PATH_MAX];

	if (getsockname(evconnlistener_get_fd(svm_listener),
	    (struct sockaddr *)&ss, &len) != 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), serv,
	    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		svm_fatalx(1, "getsockname: %s", strerror(errno));
	svm_log("listening on %s%s%s:%s as %s/%s", ss.ss_family == AF_INET6 ?
	    "[" : "", host, ss.ss_family == AF_INET6 ? "]" : "", serv,
	    svm_opt.service_id, svm_opt.instance_id);
	if (svm_opt.port_file == NULL)
		return;
	/* Written whole and renamed, so a script never reads half a port. */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", svm_opt.port_file) >=
	    sizeof(tmp))
		svm_fatalx(2, "--port-file: path too long");
	if ((f = fopen(tmp, "w")) == NULL)
		svm_fatalx(1, "%s: %s", tmp, strerror(errno));
	fprintf(f, "%s\n", serv);
	if (fclose(f) != 0 || rename(tmp, svm_opt.port_file) != 0)
		svm_fatalx(1, "%s: %s", svm_opt.port_file, strerror(errno));
}

static void
reap_cb(evutil_socket_t fd, short events, void *arg)
{
	struct svm_conn *c, *next;

	for (c = TAILQ_FIRST(&svm_conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (!c->closing)
			continue;
		TAILQ_REMOVE(&svm_conns, c, entry);
		svm_conn_free(c);
	}
	svm_read_reap();
}

void
svm_reap_later(void)
{
	event_active(svm_reap_ev, EV_TIMEOUT, 0);
}

/* --exit-on-reject: a Reject with no other live connection ends the run. */
void
svm_rejected(void)
{
	struct svm_conn *c;

	if (!svm_opt.exit_on_reject)
		return;
	TAILQ_FOREACH(c, &svm_conns, entry)
		if (!c->closing)
			return;
	svm_warn("rejected and no other connection: exiting");
	svm_report_final(stdout);
	if (svm_record != NULL)
		fflush(svm_record);
	exit(3);
}

static void
tick_cb(evutil_socket_t fd, short events, void *arg)
{
	if (svm_progress) {
		svm_report_progress();
		svm_progress_shown = 1;
	}
	if (svm_record != NULL)
		fflush(svm_record);
	/* File jobs that ended since the last batch move the point. */
	svm_state_flush();
}

static void
stop(const char *why)
{
	svm_log("stopping: %s", why);
	event_base_loopbreak(svm_base);
}

static void
signal_cb(evutil_socket_t sig, short events, void *arg)
{
	stop(sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void
duration_cb(evutil_socket_t fd, short events, void *arg)
{
	stop("duration reached");
}

static void
shutdown_all(void)
{
	struct svm_conn *c;

	/* File jobs still running are abandoned (counted) with their conn. */
	while ((c = TAILQ_FIRST(&svm_conns)) != NULL) {
		TAILQ_REMOVE(&svm_conns, c, entry);
		svm_conn_free(c);
	}
	svm_read_reap();
	evconnlistener_free(svm_listener);
	event_free(svm_reap_ev);
	event_free(svm_tick_ev);
	if (svm_duration_ev != NULL)
		event_free(svm_duration_ev);
	event_free(svm_sigterm_ev);
	event_free(svm_sigint_ev);
	frame_arena_destroy(&svm_arena);
	svm_state_flush();
	svm_state_free();
	if (svm_record != NULL) {
		if (fclose(svm_record) != 0)
			svm_warn("%s: %s", svm_opt.record_path,
			    strerror(errno));
		svm_record = NULL;
	}
	event_base_free(svm_base);
	svm_base = NULL;
	svm_tls_free();
	free(svm_opt.policy.glob);
	free(svm_opt.policy.deny_reason);
	free(svm_opt.policy.clamd_path);
}

int
main(int argc, char **argv)
{
	struct timeval tv;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	parse_options(argc, argv);

	svm_tls_init();
	if (svm_opt.state_path != NULL)
		svm_state_load();
	if (svm_opt.read_dir != NULL)
		svm_read_check_dir();
	if (svm_opt.record_path != NULL) {
		if ((svm_record = fopen(svm_opt.record_path, "w")) == NULL)
			svm_fatalx(1, "%s: %s", svm_opt.record_path,
			    strerror(errno));
		setvbuf(svm_record, NULL, _IOFBF, SVM_RECORD_BUF);
	}
	frame_arena_init(&svm_arena);

	if ((svm_base = event_base_new()) == NULL)
		svm_fatalx(1, "event_base_new failed");
	svm_listener = listen_on(svm_opt.listen, listener_cb);
	evconnlistener_set_error_cb(svm_listener, listener_error_cb);
	announce_port();

	svm_reap_ev = event_new(svm_base, -1, 0, reap_cb, NULL);
	svm_sigterm_ev = evsignal_new(svm_base, SIGTERM, signal_cb, NULL);
	svm_sigint_ev = evsignal_new(svm_base, SIGINT, signal_cb, NULL);
	svm_tick_ev = event_new(svm_base, -1, EV_PERSIST, tick_cb, NULL);
	if (svm_reap_ev == NULL || svm_sigterm_ev == NULL ||
	    svm_sigint_ev == NULL || svm_tick_ev == NULL)
		svm_fatalx(1, "event_new failed");
	evsignal_add(svm_sigterm_ev, NULL);
	evsignal_add(svm_sigint_ev, NULL);
	tv.tv_sec = SVM_TICK_MS / 1000;
	tv.tv_usec = (SVM_TICK_MS % 1000) * 1000;
	event_add(svm_tick_ev, &tv);
	if (svm_opt.duration_s > 0) {
		svm_duration_ev = evtimer_new(svm_base, duration_cb, NULL);
		tv.tv_sec = (time_t)svm_opt.duration_s;
		tv.tv_usec = 0;
		evtimer_add(svm_duration_ev, &tv);
	}
	svm_progress = !svm_opt.quiet && isatty(STDERR_FILENO);
	svm_stats.start_ns = svm_mono_ns();

	event_base_dispatch(svm_base);

	if (svm_progress_shown) {
		fputs("\r\033[K", stderr);
		svm_progress_shown = 0;
	}
	shutdown_all();
	svm_report_final(stdout);
	return 0;
}
