/*
 * harness.c: see harness.h.
 */
#include "harness.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "mux.pb-c.h"
#include "vmci_shim.h"
#include "wire.h"

static struct e2e *e2e_current;

/* ---- transport selection and test filter (the vsock guest) ---- */

/* Agent ports on vsock: base + 16 * (pid % 2000) + n, fresh per test. */
#define E2E_VSOCK_PORT_BASE	5100u

/* MUX_E2E_FILTER=GLOB: cmocka runs only the tests whose names match. */
__attribute__((constructor)) static void
e2e_filter_from_env(void)
{
	const char *f = getenv("MUX_E2E_FILTER");

	if (f != NULL && f[0] != '\0')
		cmocka_set_test_filter(f);
}

/* Unix in the scratch folder, or vsock (MUX_E2E_TRANSPORT=vsock). */
static void
e2e_transport_init(struct e2e *e)
{
	static unsigned int n;
	const char *t = getenv("MUX_E2E_TRANSPORT");

	if (t != NULL && strcmp(t, "vsock") == 0) {
		e->vsock = 1;
		/* A fresh port per test: a listener of the last muxd may linger. */
		e->agent_port = E2E_VSOCK_PORT_BASE +
		    16u * ((unsigned int)getpid() % 2000u) + (n++ % 16u);
		snprintf(e->agent_addr, sizeof(e->agent_addr), "vsock:%u:%u",
		    E2E_VSOCK_CID, e->agent_port);
	} else {
		if (t != NULL && t[0] != '\0' && strcmp(t, "unix") != 0)
			fail_msg("MUX_E2E_TRANSPORT=%s: want unix or vsock", t);
		snprintf(e->agent_addr, sizeof(e->agent_addr), "unix:%s",
		    e->agent_sock);
	}
}

const char *
e2e_agent_addr(struct e2e *e)
{
	return e->agent_addr;
}

void
e2e_skip_on_vsock(struct e2e *e, const char *why)
{
	if (!e->vsock)
		return;
	print_message("skipped on vsock: %s\n", why);
	skip();
}

static uint64_t
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int
e2e_timeout_ms(struct e2e *e, int ms)
{
	return e->sanitized ? ms * 3 : ms;
}

char *
e2e_path(struct e2e *e, const char *name)
{
	static char bufs[8][512];
	static int i;
	char *b = bufs[i++ % 8];

	snprintf(b, 512, "%s/%s", e->dir, name);
	return b;
}

static void
e2e_kill_all(void)
{
	struct e2e *e = e2e_current;
	int i, st;

	if (e == NULL)
		return;
	for (i = 0; i < e->npids; i++)
		if (e->pids[i] > 0) {
			kill(e->pids[i], SIGKILL);
			waitpid(e->pids[i], &st, 0);
			e->pids[i] = 0;
		}
}

int
e2e_setup(void **state)
{
	struct e2e *e;
	const char *bin = getenv("MUX_BIN");

	e = calloc(1, sizeof(*e));
	assert_non_null(e);
	snprintf(e->bin, sizeof(e->bin), "%s", bin != NULL ? bin : "build/bin");
	/* Sanitizers or an emulated CPU (the vsock guest): more time. */
	e->sanitized = getenv("MUX_SANITIZED") != NULL ||
	    getenv("MUX_E2E_SLOW") != NULL;
	snprintf(e->dir, sizeof(e->dir), "/tmp/mux-e2e-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->conf, sizeof(e->conf), "%s/muxd.conf", e->dir);
	snprintf(e->agent_sock, sizeof(e->agent_sock), "%s/agent.sock", e->dir);
	snprintf(e->ctl_sock, sizeof(e->ctl_sock), "%s/ctl.sock", e->dir);
	e2e_transport_init(e);
	e2e_current = e;
	signal(SIGPIPE, SIG_IGN);
	*state = e;
	return 0;
}

/* A sanitizer report in any process's stderr fails the test. */
static int
e2e_sanitizer_reports(struct e2e *e)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "grep -lE 'runtime error:|ERROR: (Address|Leak)"
	    "Sanitizer|WARNING: ThreadSanitizer' '%s'/*.err >/dev/null 2>&1", e->dir);
	if (system(cmd) != 0)
		return 0;
	snprintf(cmd, sizeof(cmd), "grep -B2 -A24 -E 'runtime error:|ERROR: "
	    "(Address|Leak)Sanitizer|WARNING: ThreadSanitizer' '%s'/*.err >&2", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "e2e: sanitizer report in %s\n", e->dir);
	return 1;
}

int
e2e_teardown(void **state)
{
	struct e2e *e = *state;
	char cmd[400];
	int bad = 0, st, i, alive = 0;

	/* muxd must still be up, and stop cleanly (exit 0) on SIGTERM. */
	for (i = 0; i < e->npids; i++)
		alive |= e->muxd > 0 && e->pids[i] == e->muxd;
	if (alive) {
		kill(e->muxd, SIGTERM);
		if (e2e_wait_exit(e->muxd, e2e_timeout_ms(e, 10000), &st) == -1) {
			fprintf(stderr, "e2e: muxd did not stop on SIGTERM\n");
			bad = 1;
		} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "e2e: muxd ended with status 0x%x\n", st);
			bad = 1;
		}
	}
	e2e_kill_all();
	e2e_current = NULL;
	if (e2e_sanitizer_reports(e))
		bad = 1;
	/* Keep the folder of a failed test for reading; remove on success. */
	if (getenv("MUX_E2E_KEEP") == NULL && !bad) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "e2e: could not remove %s\n", e->dir);
	} else
		fprintf(stderr, "e2e: kept %s\n", e->dir);
	free(e);
	return bad ? -1 : 0;
}

void
e2e_conf(struct e2e *e, const char *extra)
{
	FILE *f = fopen(e->conf, "w");

	assert_non_null(f);
	if (e->vsock) {
		fprintf(f, "[mux]\ntransport = vsock\nagent_port = %u\n"
		    "control_path = %s\n%s", e->agent_port, e->ctl_sock,
		    extra != NULL ? extra : "");
		if (extra == NULL ||
		    strstr(extra, "agent_max_connections_per_vm") == NULL)
			fprintf(f, "\n[limits]\nagent_max_connections_per_vm = %d\n",
			    E2E_VSOCK_CONNS_PER_VM);
	} else
		fprintf(f, "[mux]\ntransport = unix\nagent_path = %s\n"
		    "control_path = %s\n%s", e->agent_sock, e->ctl_sock,
		    extra != NULL ? extra : "");
	fclose(f);
}

pid_t
e2e_spawn(struct e2e *e, const char *name, const char *const argv[])
{
	char out[512], err[512];
	pid_t pid;
	int fd;

	assert_true(e->npids < E2E_MAX_PROCS);
	snprintf(out, sizeof(out), "%s/%s.out", e->dir, name);
	snprintf(err, sizeof(err), "%s/%s.err", e->dir, name);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0)
			dup2(fd, 1);
		if ((fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0)
			dup2(fd, 2);
		fd = open("/dev/null", O_RDONLY);
		dup2(fd, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	e->pids[e->npids] = pid;
	snprintf(e->names[e->npids], sizeof(e->names[0]), "%s", name);
	e->npids++;
	return pid;
}

static void
e2e_forget(struct e2e *e, pid_t pid)
{
	int i;

	for (i = 0; i < e->npids; i++)
		if (e->pids[i] == pid)
			e->pids[i] = 0;
}

int
e2e_wait_exit(pid_t pid, int timeout_ms, int *status)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid) {
			if (e2e_current != NULL)
				e2e_forget(e2e_current, pid);
			return 0;
		}
		if (r == -1 || ms_now() >= end)
			return -1;
		sleep_ms(10);
	}
}

void
e2e_stop(struct e2e *e, pid_t pid, int sig)
{
	int st;

	if (pid <= 0)
		return;
	kill(pid, sig);
	if (e2e_wait_exit(pid, e2e_timeout_ms(e, 10000), &st) == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	e2e_forget(e, pid);
}

int
e2e_wait_path(const char *path, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	struct stat sb;

	while (stat(path, &sb) == -1) {
		if (ms_now() >= end)
			return -1;
		sleep_ms(10);
	}
	return 0;
}

int
e2e_free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

pid_t
e2e_start_muxd(struct e2e *e)
{
	char bin[400];
	const char *argv[] = { bin, "-d", "-f", e->conf, NULL };

	snprintf(bin, sizeof(bin), "%s/muxd", e->bin);
	unlink(e->ctl_sock);
	e->muxd = e2e_spawn(e, "muxd", argv);
	if (e2e_wait_path(e->ctl_sock, e2e_timeout_ms(e, 5000)) == -1)
		fail_msg("muxd did not create %s (see %s/muxd.err)", e->ctl_sock, e->dir);
	return e->muxd;
}

static pid_t
e2e_svm(struct e2e *e, const char *name, int port, int tls,
    const char *const extra[])
{
	char bin[400], listen[64], portfile[512];
	const char *argv[40];
	int n = 0, i;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/mux-svm", e->bin);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(portfile, sizeof(portfile), "%s/%s.port", e->dir, name);
	unlink(portfile);
	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = listen;
	if (!tls)
		argv[n++] = "--tls-off";
	argv[n++] = "--json";
	argv[n++] = "--quiet";
	argv[n++] = "--port-file";
	argv[n++] = portfile;
	for (i = 0; extra != NULL && extra[i] != NULL && n < 38; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid = e2e_spawn(e, name, argv);
	/* The port file appears once it listens. */
	if (e2e_wait_path(portfile, e2e_timeout_ms(e, 5000)) == -1)
		fail_msg("mux-svm %s did not start listening", name);
	return pid;
}

pid_t
e2e_start_svm(struct e2e *e, const char *name, int port, const char *const extra[])
{
	return e2e_svm(e, name, port, 0, extra);
}

pid_t
e2e_start_svm_tls(struct e2e *e, const char *name, int port,
    const char *const extra[])
{
	return e2e_svm(e, name, port, 1, extra);
}

int
e2e_run_loadgen(struct e2e *e, const char *name, const char *const extra[])
{
	char bin[400], connect[400];
	const char *argv[48];
	int n = 0, i, st;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/mux-loadgen", e->bin);
	snprintf(connect, sizeof(connect), "%s", e2e_agent_addr(e));
	argv[n++] = bin;
	argv[n++] = "--connect";
	argv[n++] = connect;
	argv[n++] = "--json";
	argv[n++] = "--quiet";
	for (i = 0; extra != NULL && extra[i] != NULL && n < 46; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid = e2e_spawn(e, name, argv);
	if (e2e_wait_exit(pid, e2e_timeout_ms(e, 120000), &st) == -1)
		fail_msg("mux-loadgen %s did not finish", name);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
e2e_muxctl(struct e2e *e, char *out, size_t outlen, const char *const args[])
{
	char bin[400], cmd[2048];
	size_t n = 0, r;
	FILE *p;
	int i, st;

	snprintf(bin, sizeof(bin), "%s/muxctl", e->bin);
	snprintf(cmd, sizeof(cmd), "'%s' -s '%s'", bin, e->ctl_sock);
	for (i = 0; args[i] != NULL; i++) {
		strncat(cmd, " ", sizeof(cmd) - strlen(cmd) - 1);
		strncat(cmd, args[i], sizeof(cmd) - strlen(cmd) - 1);
	}
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	while (n + 1 < outlen && (r = fread(out + n, 1, outlen - n - 1, p)) > 0)
		n += r;
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Counts `"key":value` occurrences in an svms --json array. */
static int
count_matches(const char *json, const char *needle)
{
	int n = 0;

	while ((json = strstr(json, needle)) != NULL) {
		n++;
		json += strlen(needle);
	}
	return n;
}

int
e2e_wait_svms_up(struct e2e *e, int n, int timeout_ms)
{
	static char out[1 << 16];
	const char *args[] = { "--json", "svms", NULL };
	uint64_t end = ms_now() + (uint64_t)e2e_timeout_ms(e, timeout_ms);

	do {
		if (e2e_muxctl(e, out, sizeof(out), args) == 0 &&
		    count_matches(out, "\"state\":\"up\"") >= n)
			return 0;
		sleep_ms(50);
	} while (ms_now() < end);
	return -1;
}

/* Every live SVM has lag 0 and nothing in flight, twice in a row. */
int
e2e_wait_drained(struct e2e *e, int timeout_ms)
{
	static char out[1 << 16];
	const char *args[] = { "--json", "svms", NULL };
	uint64_t end = ms_now() + (uint64_t)e2e_timeout_ms(e, timeout_ms);
	int good = 0, up;

	do {
		if (e2e_muxctl(e, out, sizeof(out), args) == 0) {
			up = count_matches(out, "\"state\":\"up\"");
			if (count_matches(out, "\"lag\":0,") >= up &&
			    count_matches(out, "\"in_flight\":0,") >= up) {
				if (++good == 2)
					return 0;
			} else
				good = 0;
		}
		sleep_ms(300);	/* snapshots refresh every 250 ms */
	} while (ms_now() < end);
	return -1;
}

int
e2e_last_json(const char *path, char *buf, size_t len)
{
	char line[32768];
	int found = 0;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (line[0] == '{') {
			snprintf(buf, len, "%s", line);
			found = 1;
		}
	fclose(f);
	return found ? 0 : -1;
}

static const char *
json_find(const char *json, const char *key)
{
	char pat[128];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if ((p = strstr(json, pat)) == NULL)
		return NULL;
	return p + strlen(pat);
}

int64_t
e2e_json_i64(const char *json, const char *key)
{
	const char *p = json_find(json, key);

	if (p == NULL)
		fail_msg("key %s missing in %s", key, json);
	if (strncmp(p, "true", 4) == 0)
		return 1;
	if (strncmp(p, "false", 5) == 0)
		return 0;
	return strtoll(p, NULL, 10);
}

double
e2e_json_f(const char *json, const char *key)
{
	const char *p = json_find(json, key);

	if (p == NULL)
		fail_msg("key %s missing in %s", key, json);
	return strtod(p, NULL);
}

static int
class_of(const char *s)
{
	int c = wire_class_parse(s);

	return c < 0 ? atoi(s) : c;
}

size_t
e2e_read_records(const char *path, struct rec **out)
{
	char line[512], a[32], b[32];
	size_t n = 0, cap = 1024;
	struct rec *v = malloc(cap * sizeof(*v)), *r;
	unsigned long long x, y, z, w;
	unsigned int cid;
	int reply;
	FILE *f;

	assert_non_null(v);
	if ((f = fopen(path, "r")) == NULL)
		fail_msg("cannot open %s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (n == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(*v));
			assert_non_null(v);
		}
		r = &v[n];
		memset(r, 0, sizeof(*r));
		if (sscanf(line, "GAP %llu %llu %31s %llu", &x, &y, a, &z) == 4) {
			r->gap = 1;
			r->seq = x;
			r->last = y;
			r->reason = strcmp(a, "OVERRUN") == 0 ? 1 : 2;
			n++;
		} else if (sscanf(line, "%llu %u %llu %llu %31s %d", &x, &cid, &y, &w,
		    b, &reply) == 6) {
			r->seq = x;
			r->cid = cid;
			r->session = y;
			r->event_id = w;
			r->cls = class_of(b);
			r->reply = reply;
			n++;
		}
	}
	fclose(f);
	*out = v;
	return n;
}

size_t
e2e_read_sent(const char *path, struct sent **out)
{
	char line[256], b[32];
	size_t n = 0, cap = 1024;
	struct sent *v = malloc(cap * sizeof(*v));
	unsigned long long y, w;
	unsigned int cid;
	int reply;
	FILE *f;

	assert_non_null(v);
	if ((f = fopen(path, "r")) == NULL)
		fail_msg("cannot open %s", path);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%u %llu %llu %31s %d", &cid, &y, &w, b, &reply) != 5)
			continue;
		if (n == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(*v));
			assert_non_null(v);
		}
		v[n].cid = cid;
		v[n].session = y;
		v[n].event_id = w;
		v[n].cls = class_of(b);
		v[n].reply = reply;
		n++;
	}
	fclose(f);
	*out = v;
	return n;
}

/* The value of one metric line, e.g. `mux_svms_up` or `x{a="b"}`. */
uint64_t
e2e_metric(struct e2e *e, const char *name)
{
	static char out[1 << 18];
	const char *args[] = { "metrics", NULL };
	char *p, pat[256];

	if (e2e_muxctl(e, out, sizeof(out), args) != 0)
		fail_msg("muxctl metrics failed: %s", out);
	snprintf(pat, sizeof(pat), "\n%s ", name);
	if ((p = strstr(out, pat)) == NULL)
		return 0;	/* label sets appear when first counted */
	return strtoull(p + strlen(pat), NULL, 10);
}

long
e2e_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

int
e2e_raw_agent(struct e2e *e, uint32_t cid)
{
	struct vmci_addr addr;
	char spec[400], err[256];
	int fd;

	snprintf(spec, sizeof(spec), "%s", e2e_agent_addr(e));
	assert_int_equal(vmci_addr_parse(spec, &addr, err, sizeof(err)), 0);
	fd = vmci_connect(&addr, cid, err, sizeof(err));
	if (fd < 0)
		fail_msg("raw agent: %s", err);
	return fd;
}

int
e2e_send_frame(int fd, const void *body, uint32_t len)
{
	uint8_t hdr[FRAME_HDR_LEN];

	frame_put_header(hdr, len);
	if (write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr))
		return -1;
	if (len > 0 && write(fd, body, len) != (ssize_t)len)
		return -1;
	return 0;
}

int
e2e_wait_closed(int fd, int timeout_ms)
{
	uint64_t end = ms_now() + (uint64_t)timeout_ms;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[4096];
	ssize_t r;

	while (ms_now() < end) {
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		r = read(fd, buf, sizeof(buf));
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 1;
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return 1;
	}
	return 0;
}

int
e2e_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

/* ---- raw agents ---- */

void
e2e_agent_send(int fd, const Mux__AgentMessage *m)
{
	size_t n = mux__agent_message__get_packed_size(m);
	uint8_t *buf = malloc(n + 1);

	assert_non_null(buf);
	mux__agent_message__pack(m, buf);
	assert_int_equal(e2e_send_frame(fd, buf, (uint32_t)n), 0);
	free(buf);
}

Mux__MuxToAgent *
e2e_agent_read(int fd, int timeout_ms)
{
	uint8_t hdr[FRAME_HDR_LEN], *body;
	uint32_t len, got = 0;
	Mux__MuxToAgent *m;
	ssize_t r;

	if (!e2e_readable(fd, timeout_ms))
		return NULL;
	while (got < sizeof(hdr)) {
		if ((r = read(fd, hdr + got, sizeof(hdr) - got)) <= 0)
			return NULL;
		got += (uint32_t)r;
	}
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	body = malloc(len + 1);
	assert_non_null(body);
	for (got = 0; got < len; got += (uint32_t)r)
		if (!e2e_readable(fd, timeout_ms) ||
		    (r = read(fd, body + got, len - got)) <= 0)
			break;
	m = got == len ? mux__mux_to_agent__unpack(NULL, len, body) : NULL;
	free(body);
	return m;
}

int
e2e_agent_read_until(int fd, int want, Mux__MuxToAgent **out)
{
	Mux__MuxToAgent *m;

	while ((m = e2e_agent_read(fd, 5000)) != NULL) {
		if ((int)m->msg_case == want) {
			if (out != NULL)
				*out = m;
			else
				mux__mux_to_agent__free_unpacked(m, NULL);
			return 0;
		}
		mux__mux_to_agent__free_unpacked(m, NULL);
	}
	return -1;
}

void
e2e_agent_send_hello(int fd, uint32_t version, const char *claimed_uuid)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__AgentHello h = MUX__AGENT_HELLO__INIT;

	h.protocol_version = version;
	h.agent_version = (char *)"raw-test";
	h.os = (char *)"linux";
	if (claimed_uuid != NULL)
		h.claimed_vm_uuid = (char *)claimed_uuid;
	m.msg_case = MUX__AGENT_MESSAGE__MSG_HELLO;
	m.hello = &h;
	e2e_agent_send(fd, &m);
}

uint64_t
e2e_agent_handshake(int fd, uint32_t *cid)
{
	Mux__MuxToAgent *r = NULL;
	uint64_t session;

	e2e_agent_send_hello(fd, 1, NULL);
	if (e2e_agent_read_until(fd, MUX__MUX_TO_AGENT__MSG_WELCOME, &r) == -1)
		fail_msg("no AgentWelcome after AgentHello");
	assert_int_equal(r->welcome->protocol_version, 1);
	session = r->welcome->session_id;
	if (cid != NULL)
		*cid = r->welcome->cid;
	mux__mux_to_agent__free_unpacked(r, NULL);
	/* The full solution state follows the welcome at once (3.4). */
	if (e2e_agent_read_until(fd, MUX__MUX_TO_AGENT__MSG_SOLUTIONS, NULL) == -1)
		fail_msg("no SolutionState after AgentWelcome");
	assert_true(session != 0);
	return session;
}

void
e2e_agent_file_events(int fd, uint64_t first_id, size_t n, int reply,
    const char *path)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__EventBatch b = MUX__EVENT_BATCH__INIT;
	Mux__FileEvent f = MUX__FILE_EVENT__INIT;
	Mux__Event *ev = calloc(n, sizeof(*ev)), **pe = calloc(n, sizeof(*pe));
	size_t i;

	assert_non_null(ev);
	assert_non_null(pe);
	f.op = MUX__FILE_EVENT__OP__OPEN;
	f.path = (char *)path;
	f.file_id = 1;
	for (i = 0; i < n; i++) {
		mux__event__init(&ev[i]);
		ev[i].event_id = first_id + i;
		ev[i].reply_expected = reply;
		ev[i].body_case = MUX__EVENT__BODY_FILE;
		ev[i].file = &f;
		pe[i] = &ev[i];
	}
	b.events = pe;
	b.n_events = n;
	m.msg_case = MUX__AGENT_MESSAGE__MSG_EVENTS;
	m.events = &b;
	e2e_agent_send(fd, &m);
	free(ev);
	free(pe);
}

/* ---- accounting: what each SVM got against what the agents sent ---- */

struct e2e_key {
	uint64_t session;
	uint64_t event_id;
};

static int
e2e_key_cmp(const void *a, const void *b)
{
	const struct e2e_key *x = a, *y = b;

	if (x->session != y->session)
		return x->session < y->session ? -1 : 1;
	if (x->event_id != y->event_id)
		return x->event_id < y->event_id ? -1 : 1;
	return 0;
}

/*
 * One SVM's record against what the agents sent: seqs ascend (without a
 * hole for a full subscriber), event ids ascend per session, every CID is
 * the stamped one, and the agent events of the subscribed classes are
 * exactly the sent ones, each once. Returns how many VM events it saw.
 */
static int
e2e_cid_in(uint32_t cid, const uint32_t *cids, size_t n)
{
	size_t i;

	if (n == 0)
		return 1;
	for (i = 0; i < n; i++)
		if (cids[i] == cid)
			return 1;
	return 0;
}

size_t
e2e_check_record(struct e2e *e, const char *name, const struct rec *r, size_t nr,
    const struct sent *s, size_t ns, uint32_t mask, const uint32_t *cids,
    size_t ncids)
{
	struct e2e_key *got = calloc(nr + 1, sizeof(*got));
	struct e2e_key *want = calloc(ns + 1, sizeof(*want));
	struct e2e_key *last = calloc(nr + 1, sizeof(*last));
	size_t ngot = 0, nwant = 0, nlast = 0, i, j, vm = 0;
	uint64_t prev = 0;

	assert_non_null(got);
	assert_non_null(want);
	assert_non_null(last);
	for (i = 0; i < nr; i++) {
		if (r[i].gap)
			fail_msg("%s: unexpected gap %llu..%llu", name,
			    (unsigned long long)r[i].seq,
			    (unsigned long long)r[i].last);
		/* seq is global: only a full subscriber sees every one. */
		if (mask == WIRE_CLASS_ALL && ncids == 0 ? r[i].seq != prev + 1 :
		    r[i].seq <= prev)
			fail_msg("%s: seq %llu after %llu", name,
			    (unsigned long long)r[i].seq,
			    (unsigned long long)prev);
		prev = r[i].seq;
		if ((mask & (1u << r[i].cls)) == 0 ||
		    !e2e_cid_in(r[i].cid, cids, ncids))
			fail_msg("%s: seq %llu of class %d cid %u it did not "
			    "subscribe to", name, (unsigned long long)r[i].seq,
			    r[i].cls, r[i].cid);
		if (r[i].cls == MUX__EVENT_CLASS__VM) {
			vm++;
			continue;
		}
		/* On vsock the kernel stamps CID 1, whatever was asked. */
		if (e->vsock && r[i].cid != E2E_VSOCK_CID)
			fail_msg("%s: seq %llu stamped cid %u, want %u", name,
			    (unsigned long long)r[i].seq, r[i].cid,
			    E2E_VSOCK_CID);
		/* Order within a session: the last id seen per session. */
		for (j = 0; j < nlast && last[j].session != r[i].session; j++)
			;
		if (j == nlast)
			last[nlast++].session = r[i].session;
		else if (last[j].event_id >= r[i].event_id)
			fail_msg("%s: session %llu event %llu after %llu", name,
			    (unsigned long long)r[i].session,
			    (unsigned long long)r[i].event_id,
			    (unsigned long long)last[j].event_id);
		last[j].event_id = r[i].event_id;
		got[ngot].session = r[i].session;
		got[ngot++].event_id = r[i].event_id;
	}
	for (i = 0; i < ns; i++)
		if ((mask & (1u << s[i].cls)) && e2e_cid_in(s[i].cid, cids, ncids)) {
			want[nwant].session = s[i].session;
			want[nwant++].event_id = s[i].event_id;
		}
	qsort(got, ngot, sizeof(*got), e2e_key_cmp);
	qsort(want, nwant, sizeof(*want), e2e_key_cmp);
	for (i = 1; i < ngot; i++)
		if (e2e_key_cmp(&got[i - 1], &got[i]) == 0)
			fail_msg("%s: session %llu event %llu delivered twice",
			    name, (unsigned long long)got[i].session,
			    (unsigned long long)got[i].event_id);
	if (ngot != nwant)
		fail_msg("%s: %zu agent events delivered, %zu sent", name,
		    ngot, nwant);
	for (i = 0; i < ngot; i++)
		if (e2e_key_cmp(&got[i], &want[i]) != 0)
			fail_msg("%s: delivered set differs from the sent one at "
			    "%zu", name, i);
	print_message("fan-out %s: %zu agent events + %zu VM events, each once, "
	    "in order\n", name, ngot, vm);
	free(got);
	free(want);
	free(last);
	return vm;
}

