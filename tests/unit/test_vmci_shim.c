/*
 * test_vmci_shim.c: address and CID line parsing, and the unix backend
 * against real sockets on a temporary path with a real event base.
 *
 * Never the vsock backend: this machine's vsock device belongs to its host,
 * so vsock addresses are only parsed here, never listened on or dialled.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "vmci_shim.h"

#define TEST_WAIT_MS	3000	/* upper bound for anything expected */
#define TEST_QUIET_MS	100	/* how long "nothing happens" is watched */
#define TEST_CLIENTS	(VMCI_PENDING_MAX + 1)

struct test_env {
	char			 dir[64];
	char			 path[96];
	struct vmci_addr	 addr;
	struct event_base	*base;
	struct vmci_listener	*l;

	int			 free_in_cb;	/* callbacks free l */

	int			 naccept;
	int			 afd;
	uint32_t		 cid;
	char			 peer[64];

	int			 nerror;
	char			 reason[32];
	char			 epeer[160];

	int			 clients[TEST_CLIENTS];
};

static uint64_t
test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
test_accept_cb(int fd, uint32_t cid, const char *peer, void *arg)
{
	struct test_env *e = arg;

	if (e->afd != -1)
		close(e->afd);
	e->naccept++;
	e->afd = fd;
	e->cid = cid;
	snprintf(e->peer, sizeof e->peer, "%s", peer);
	if (e->free_in_cb) {
		vmci_listener_free(e->l);
		e->l = NULL;
	}
}

static void
test_error_cb(const char *reason, const char *peer, void *arg)
{
	struct test_env *e = arg;

	e->nerror++;
	snprintf(e->reason, sizeof e->reason, "%s", reason);
	snprintf(e->epeer, sizeof e->epeer, "%s", peer);
	if (e->free_in_cb) {
		vmci_listener_free(e->l);
		e->l = NULL;
	}
}

static void
test_guard_cb(int fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Run the loop until *counter moves past start or ms pass. */
static void
test_run(struct test_env *e, const int *counter, int start, unsigned int ms)
{
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event	*guard;

	guard = evtimer_new(e->base, test_guard_cb, e->base);
	assert_non_null(guard);
	evtimer_add(guard, &tv);
	while (*counter == start && evtimer_pending(guard, NULL))
		event_base_loop(e->base, EVLOOP_ONCE);
	event_free(guard);
}

static int
test_setup(void **state)
{
	struct test_env	*e;
	char		 spec[160];
	size_t		 i;

	e = calloc(1, sizeof *e);
	assert_non_null(e);
	snprintf(e->dir, sizeof e->dir, "/tmp/vmci-test.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof e->path, "%s/agent.sock", e->dir);
	snprintf(spec, sizeof spec, "unix:%s", e->path);
	assert_int_equal(vmci_addr_parse(spec, &e->addr, NULL, 0), 0);
	e->base = event_base_new();
	assert_non_null(e->base);
	e->afd = -1;
	for (i = 0; i < TEST_CLIENTS; i++)
		e->clients[i] = -1;
	*state = e;
	return 0;
}

static int
test_teardown(void **state)
{
	struct test_env	*e = *state;
	size_t		 i;

	vmci_listener_free(e->l);
	if (e->afd != -1)
		close(e->afd);
	for (i = 0; i < TEST_CLIENTS; i++)
		if (e->clients[i] != -1)
			close(e->clients[i]);
	event_base_free(e->base);
	unlink(e->path);
	rmdir(e->dir);
	free(e);
	return 0;
}

static void
test_listen(struct test_env *e)
{
	char err[256] = "";

	e->l = vmci_listen(e->base, &e->addr, test_accept_cb, test_error_cb,
	    e, err, sizeof err);
	if (e->l == NULL)
		fail_msg("vmci_listen: %s", err);
	assert_non_null(strstr(vmci_listener_describe(e->l), "unix backend"));
}

/* A raw client, so the test controls every byte of the CID line. */
static int
test_client(struct test_env *e, size_t slot)
{
	struct sockaddr_un	sun;
	int			fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", e->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	e->clients[slot] = fd;
	return fd;
}

static void
test_send(int fd, const char *s, size_t len)
{
	assert_int_equal(send(fd, s, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* What the fd yields within TEST_WAIT_MS: bytes, 0 for EOF, -1 error. */
static ssize_t
test_recv(int fd, char *buf, size_t len)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLIN };
	ssize_t		n;

	assert_int_equal(poll(&pfd, 1, TEST_WAIT_MS), 1);
	n = recv(fd, buf, len, 0);
	return n;
}

/* The shim closed its end: EOF (or a reset) at the client. */
static void
test_assert_closed(int fd)
{
	char	buf[8];
	ssize_t	n;

	n = test_recv(fd, buf, sizeof buf);
	assert_true(n == 0 || (n == -1 && errno == ECONNRESET));
}

static void
test_addr_parse_good(void **state)
{
	struct vmci_addr	a;
	char			err[128];
	char			spec[128];
	char			path[108];

	assert_int_equal(vmci_addr_parse("unix:/tmp/x.sock", &a, err,
	    sizeof err), 0);
	assert_int_equal(a.backend, VMCI_UNIX);
	assert_string_equal(a.path, "/tmp/x.sock");

	assert_int_equal(vmci_addr_parse("unix:rel/x", &a, err, sizeof err),
	    0);
	assert_string_equal(a.path, "rel/x");

	/* The longest path that fits sun_path with its NUL. */
	memset(path, 'p', sizeof path - 1);
	path[sizeof path - 1] = '\0';
	snprintf(spec, sizeof spec, "unix:%s", path);
	assert_int_equal(vmci_addr_parse(spec, &a, err, sizeof err), 0);
	assert_int_equal(strlen(a.path), sizeof path - 1);

	assert_int_equal(vmci_addr_parse("vsock:3:1024", &a, err, sizeof err),
	    0);
	assert_int_equal(a.backend, VMCI_VSOCK);
	assert_int_equal(a.cid, 3);
	assert_int_equal(a.port, 1024);

	assert_int_equal(vmci_addr_parse("vsock:any:5000", &a, err,
	    sizeof err), 0);
	assert_int_equal(a.cid, VMCI_CID_ANY);
	assert_int_equal(a.port, 5000);

	assert_int_equal(vmci_addr_parse("vsock:4294967294:0", &a, err,
	    sizeof err), 0);
	assert_int_equal(a.cid, 4294967294u);
	assert_int_equal(a.port, 0);
}

static void
test_addr_parse_bad(void **state)
{
	static const char *bad[] = {
		"", "unix", "unix:", "tcp:127.0.0.1:1", "UNIX:/x", "/tmp/x",
		"vsock:", "vsock:3", "vsock:3:", "vsock::5", "vsock:-3:5",
		"vsock:+3:5", "vsock: 3:5", "vsock:3:+5", "vsock:3:5:6",
		"vsock:x:5", "vsock:3:y", "vsock:4294967296:5",
		"vsock:3:4294967296", "vsock:3:4294967295", "vsock:ANY:5",
		"vsock:any:", "vsock:3:5 ",
	};
	struct vmci_addr	a;
	char			err[128];
	char			spec[160];
	size_t			i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (vmci_addr_parse(bad[i], &a, err, sizeof err) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		if (err[0] == '\0')
			fail_msg("no error text for \"%s\"", bad[i]);
	}
	assert_int_equal(vmci_addr_parse(NULL, &a, err, sizeof err), -1);
	/* No error buffer is fine too. */
	assert_int_equal(vmci_addr_parse("nope", &a, NULL, 0), -1);

	/* One byte too long for sun_path. */
	snprintf(spec, sizeof spec, "unix:%0108d", 0);
	assert_int_equal(vmci_addr_parse(spec, &a, err, sizeof err), -1);
	assert_non_null(strstr(err, "108 bytes"));
}

static void
test_backend_name(void **state)
{
	assert_string_equal(vmci_backend_name(VMCI_UNIX), "unix");
	assert_string_equal(vmci_backend_name(VMCI_VSOCK), "vsock");
	assert_string_equal(vmci_backend_name((enum vmci_backend)0),
	    "unknown");
}

static void
test_cid_line(void **state)
{
	static const struct {
		const char	*line;
		int		 ok;
		uint32_t	 cid;
	} cases[] = {
		{ "CID 3\n", 1, 3 },
		{ "CID 7\n", 1, 7 },
		{ "CID 1000\n", 1, 1000 },
		{ "CID 4294967294\n", 1, 4294967294u },
		{ "CID 2\n", 0, 0 },
		{ "CID 0\n", 0, 0 },
		{ "CID 1\n", 0, 0 },
		{ "CID 4294967295\n", 0, 0 },
		{ "CID 4294967296\n", 0, 0 },
		{ "CID 99999999999\n", 0, 0 },		/* 16 bytes, overflows */
		{ "CID 07\n", 0, 0 },
		{ "CID 00000000003\n", 0, 0 },
		{ "CID +7\n", 0, 0 },
		{ "CID -7\n", 0, 0 },
		{ "CID 7", 0, 0 },			/* no newline */
		{ "CID 7\r\n", 0, 0 },
		{ "CID 7 \n", 0, 0 },			/* trailing junk */
		{ "CID 7x\n", 0, 0 },
		{ "CID 7\nX", 0, 0 },			/* bytes past '\n' */
		{ "CID  7\n", 0, 0 },			/* two spaces */
		{ "CID\t7\n", 0, 0 },
		{ "cid 7\n", 0, 0 },
		{ "CIDS 7\n", 0, 0 },
		{ " CID 7\n", 0, 0 },
		{ "CID \n", 0, 0 },
		{ "CID\n", 0, 0 },
		{ "\n", 0, 0 },
		{ "", 0, 0 },
		{ "CID 123456789012\n", 0, 0 },		/* 17 bytes */
	};
	uint32_t	cid;
	size_t		i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cid = 12345;
		if (vmci_parse_cid_line(cases[i].line, strlen(cases[i].line),
		    &cid) != (cases[i].ok ? 0 : -1))
			fail_msg("case %zu \"%s\": wrong verdict", i,
			    cases[i].line);
		assert_int_equal(cid, cases[i].ok ? cases[i].cid : 12345);
	}

	/* A NUL inside, and the 16-byte limit against len, not content. */
	assert_int_equal(vmci_parse_cid_line("CID 7\0\n", 7, &cid), -1);
	assert_int_equal(vmci_parse_cid_line("CID 7\n", 17, &cid), -1);
	assert_int_equal(vmci_parse_cid_line(NULL, 6, &cid), -1);
}

static void
test_good_client(void **state)
{
	struct test_env	*e = *state;
	char		 buf[16];
	ssize_t		 n;
	int		 fd;

	test_listen(e);
	fd = test_client(e, 0);
	/* One send: the frames sit right behind the line in the queue. */
	test_send(fd, "CID 7\nHELLO", 11);
	test_run(e, &e->naccept, 0, TEST_WAIT_MS);

	assert_int_equal(e->naccept, 1);
	assert_int_equal(e->nerror, 0);
	assert_int_equal(e->cid, 7);
	assert_true(strncmp(e->peer, "unix:cid=7 fd=", 14) == 0);
	assert_true(fcntl(e->afd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(e->afd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(vmci_listener_pending(e->l), 0);

	n = test_recv(e->afd, buf, sizeof buf);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "HELLO", 5);
}

static void
test_connect(void **state)
{
	struct test_env	*e = *state;
	char		 err[256] = "";
	char		 buf[16];
	int		 fd;

	test_listen(e);
	fd = vmci_connect(&e->addr, VMCI_CID_MAX, err, sizeof err);
	if (fd == -1)
		fail_msg("vmci_connect: %s", err);
	e->clients[0] = fd;
	assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
	test_send(fd, "\0\0\0\3abc", 7);
	test_run(e, &e->naccept, 0, TEST_WAIT_MS);

	assert_int_equal(e->naccept, 1);
	assert_int_equal(e->cid, VMCI_CID_MAX);
	assert_int_equal(test_recv(e->afd, buf, sizeof buf), 7);
	assert_memory_equal(buf, "\0\0\0\3abc", 7);
}

static void
test_connect_errors(void **state)
{
	struct test_env		*e = *state;
	struct vmci_addr	 gone;
	char			 err[256] = "";

	test_listen(e);
	assert_int_equal(vmci_connect(&e->addr, 2, err, sizeof err), -1);
	assert_non_null(strstr(err, "out of range"));
	assert_int_equal(vmci_connect(&e->addr, VMCI_CID_ANY, err,
	    sizeof err), -1);

	assert_int_equal(vmci_addr_parse("unix:/nonexistent/vmci.sock", &gone,
	    NULL, 0), 0);
	assert_int_equal(vmci_connect(&gone, 7, err, sizeof err), -1);
	assert_non_null(strstr(err, "connect"));

	/* Nothing reached the listener. */
	test_run(e, &e->nerror, 0, TEST_QUIET_MS);
	assert_int_equal(e->naccept, 0);
	assert_int_equal(e->nerror, 0);
}

static void
test_partial_line(void **state)
{
	struct test_env	*e = *state;
	char		 buf[16];
	int		 fd;

	test_listen(e);
	fd = test_client(e, 0);
	test_send(fd, "CI", 2);
	test_run(e, &e->naccept, 0, TEST_QUIET_MS);
	assert_int_equal(e->naccept, 0);
	assert_int_equal(vmci_listener_pending(e->l), 1);

	test_send(fd, "D 42", 4);
	test_run(e, &e->naccept, 0, TEST_QUIET_MS);
	assert_int_equal(e->naccept, 0);

	test_send(fd, "\nX", 2);
	test_run(e, &e->naccept, 0, TEST_WAIT_MS);
	assert_int_equal(e->naccept, 1);
	assert_int_equal(e->cid, 42);
	assert_int_equal(vmci_listener_pending(e->l), 0);
	assert_int_equal(test_recv(e->afd, buf, sizeof buf), 1);
	assert_int_equal(buf[0], 'X');
}

static void
test_bad_line(void **state)
{
	static const char *bad[] = {
		"CID 07\n", "CID 2\n", "cid 7\n", "CID 7 \n", "CID 4294967295\n",
		"GET / HTTP/1.1\r\n",
		"CID 123456789012",	/* 16 bytes without a newline */
		"CID 7\r\nmore",
	};
	struct test_env	*e = *state;
	uint64_t	 t0;
	size_t		 i;
	int		 fd, before;

	test_listen(e);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		before = e->nerror;
		t0 = test_now_ms();
		fd = test_client(e, i);
		test_send(fd, bad[i], strlen(bad[i]));
		test_run(e, &e->nerror, before, TEST_WAIT_MS);
		if (e->nerror != before + 1)
			fail_msg("\"%s\": no error", bad[i]);
		assert_string_equal(e->reason, "cid_line");
		assert_true(strncmp(e->epeer, "unix:fd=", 8) == 0);
		/* Refused on sight, not after the timeout. */
		assert_true(test_now_ms() - t0 < VMCI_CID_LINE_TIMEOUT_MS / 2);
		test_assert_closed(fd);
	}
	assert_int_equal(e->naccept, 0);
	assert_int_equal(vmci_listener_pending(e->l), 0);
}

static void
test_eof_before_line(void **state)
{
	struct test_env	*e = *state;
	int		 fd;

	test_listen(e);
	fd = test_client(e, 0);
	test_send(fd, "CID 7", 5);
	shutdown(fd, SHUT_WR);
	test_run(e, &e->nerror, 0, TEST_WAIT_MS);
	assert_int_equal(e->nerror, 1);
	assert_string_equal(e->reason, "cid_line");
	assert_int_equal(e->naccept, 0);
	test_assert_closed(fd);
}

static void
test_silent_client(void **state)
{
	struct test_env	*e = *state;
	uint64_t	 t0, dt;
	int		 fd;

	test_listen(e);
	vmci_listener_set_timeout_ms(e->l, TEST_QUIET_MS);
	t0 = test_now_ms();
	fd = test_client(e, 0);
	test_run(e, &e->nerror, 0, TEST_WAIT_MS);
	dt = test_now_ms() - t0;

	assert_int_equal(e->nerror, 1);
	assert_string_equal(e->reason, "cid_line_timeout");
	assert_true(dt >= TEST_QUIET_MS - 5);
	assert_true(dt < TEST_WAIT_MS);
	assert_int_equal(e->naccept, 0);
	assert_int_equal(vmci_listener_pending(e->l), 0);
	test_assert_closed(fd);
}

/* The deadline counts from accept: trickling bytes does not extend it. */
static void
test_dribbling_client(void **state)
{
	static const char	 line[] = "CID 12345\n";
	struct test_env		*e = *state;
	uint64_t		 t0;
	size_t			 i;
	int			 fd;

	test_listen(e);
	vmci_listener_set_timeout_ms(e->l, 2 * TEST_QUIET_MS);
	t0 = test_now_ms();
	fd = test_client(e, 0);
	for (i = 0; i < sizeof line - 1 && e->nerror == 0; i++) {
		test_send(fd, line + i, 1);
		test_run(e, &e->nerror, 0, TEST_QUIET_MS / 2);
	}
	assert_int_equal(e->nerror, 1);
	assert_string_equal(e->reason, "cid_line_timeout");
	assert_int_equal(e->naccept, 0);
	/* The whole line would have taken 10 * TEST_QUIET_MS / 2. */
	assert_true(test_now_ms() - t0 < 10 * TEST_QUIET_MS / 2);
}

static void
test_stale_socket(void **state)
{
	struct test_env		*e = *state;
	struct sockaddr_un	 sun;
	struct stat		 sb;
	int			 fd;

	/* A socket file nobody listens on, as a crashed daemon leaves. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd != -1);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", e->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	close(fd);
	assert_int_equal(lstat(e->path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));

	test_listen(e);
	fd = test_client(e, 0);
	test_send(fd, "CID 9\n", 6);
	test_run(e, &e->naccept, 0, TEST_WAIT_MS);
	assert_int_equal(e->naccept, 1);
	assert_int_equal(e->cid, 9);

	/* Free removes its own socket file. */
	vmci_listener_free(e->l);
	e->l = NULL;
	assert_int_equal(lstat(e->path, &sb), -1);
}

static void
test_live_socket(void **state)
{
	struct test_env		*e = *state;
	struct vmci_listener	*second;
	char			 err[256] = "";
	int			 fd;

	test_listen(e);
	second = vmci_listen(e->base, &e->addr, test_accept_cb, test_error_cb,
	    e, err, sizeof err);
	assert_null(second);
	assert_non_null(strstr(err, "in use"));

	/* The first listener still owns the path. */
	fd = test_client(e, 0);
	test_send(fd, "CID 5\n", 6);
	test_run(e, &e->naccept, 0, TEST_WAIT_MS);
	assert_int_equal(e->naccept, 1);
	assert_int_equal(e->cid, 5);
}

static void
test_not_a_socket(void **state)
{
	struct test_env	*e = *state;
	struct stat	 sb;
	char		 err[256] = "";
	int		 fd;

	fd = open(e->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, "data", 4), 4);
	close(fd);

	assert_null(vmci_listen(e->base, &e->addr, test_accept_cb,
	    test_error_cb, e, err, sizeof err));
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(lstat(e->path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_size, 4);
}

static void
test_missing_parent(void **state)
{
	struct test_env		*e = *state;
	struct vmci_addr	 a;
	char			 spec[160];
	char			 err[256] = "";

	snprintf(spec, sizeof spec, "unix:%s/nope/agent.sock", e->dir);
	assert_int_equal(vmci_addr_parse(spec, &a, NULL, 0), 0);
	assert_null(vmci_listen(e->base, &a, test_accept_cb, test_error_cb,
	    e, err, sizeof err));
	assert_non_null(strstr(err, "/nope"));
	assert_non_null(strstr(err, "directory"));
}

static void
test_free_with_pending(void **state)
{
	struct test_env	*e = *state;
	struct stat	 sb;
	size_t		 i;

	test_listen(e);
	for (i = 0; i < 3; i++)
		test_client(e, i);
	test_send(e->clients[2], "CID", 3);
	for (i = 0; i < 20 && vmci_listener_pending(e->l) < 3; i++)
		test_run(e, &e->nerror, 0, TEST_QUIET_MS / 10);
	assert_int_equal(vmci_listener_pending(e->l), 3);

	vmci_listener_free(e->l);
	e->l = NULL;
	for (i = 0; i < 3; i++)
		test_assert_closed(e->clients[i]);
	assert_int_equal(e->naccept, 0);
	assert_int_equal(e->nerror, 0);
	assert_int_equal(lstat(e->path, &sb), -1);
}

/* A successor's file at our path is not ours to remove. */
static void
test_free_spares_foreign_file(void **state)
{
	struct test_env	*e = *state;
	struct stat	 sb;
	int		 fd;

	test_listen(e);
	assert_int_equal(unlink(e->path), 0);
	fd = open(e->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd != -1);
	close(fd);
	vmci_listener_free(e->l);
	e->l = NULL;
	assert_int_equal(lstat(e->path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
}

static void
test_pause(void **state)
{
	struct test_env	*e = *state;
	int		 fd;

	test_listen(e);
	vmci_listener_pause(e->l, 1);
	fd = test_client(e, 0);
	test_send(fd, "CID 11\n", 7);
	test_run(e, &e->naccept, 0, TEST_QUIET_MS);
	assert_int_equal(e->naccept, 0);
	assert_int_equal(vmci_listener_pending(e->l), 0);

	vmci_listener_pause(e->l, 0);
	test_run(e, &e->naccept, 0, TEST_WAIT_MS);
	assert_int_equal(e->naccept, 1);
	assert_int_equal(e->cid, 11);
}

static void
test_backlog(void **state)
{
	struct test_env	*e = *state;
	size_t		 i;

	test_listen(e);
	for (i = 0; i < TEST_CLIENTS; i++)
		test_client(e, i);
	test_run(e, &e->nerror, 0, TEST_WAIT_MS);
	assert_int_equal(e->nerror, 1);
	assert_string_equal(e->reason, "cid_line_backlog");
	assert_int_equal(vmci_listener_pending(e->l), VMCI_PENDING_MAX);
	/* Accept is FIFO: the newest is the last client. */
	test_assert_closed(e->clients[TEST_CLIENTS - 1]);

	/* The pending ones still get their turn. */
	test_send(e->clients[0], "CID 3\n", 6);
	test_run(e, &e->naccept, 0, TEST_WAIT_MS);
	assert_int_equal(e->naccept, 1);
	assert_int_equal(e->cid, 3);
	assert_int_equal(vmci_listener_pending(e->l), VMCI_PENDING_MAX - 1);
}

static void
test_emfile(void **state)
{
	struct test_env	*e = *state;
	struct rlimit	 saved, low;
	uint64_t	 t0;
	int		 fd, next;

	test_listen(e);
	fd = test_client(e, 0);
	test_send(fd, "CID 8\n", 6);

	/* Make the next fd number the first one over the limit. */
	next = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(next != -1);
	close(next);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = (rlim_t)next;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	t0 = test_now_ms();
	test_run(e, &e->nerror, 0, TEST_WAIT_MS);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);

	assert_int_equal(e->nerror, 1);
	assert_string_equal(e->reason, "accept_emfile");
	assert_true(strncmp(e->epeer, "unix:", 5) == 0);
	assert_string_equal(e->epeer + 5, e->path);
	assert_int_equal(e->naccept, 0);

	/* Accepting rests about a second, then takes the client. */
	test_run(e, &e->naccept, 0, TEST_WAIT_MS);
	assert_int_equal(e->naccept, 1);
	assert_int_equal(e->cid, 8);
	assert_true(test_now_ms() - t0 >= VMCI_ACCEPT_PAUSE_MS - 50);
}

/* Callbacks may free the listener; the shim must not touch it after. */
static void
test_free_in_callback(void **state)
{
	struct test_env	*e = *state;
	int		 fd;

	test_listen(e);
	e->free_in_cb = 1;
	fd = test_client(e, 0);
	test_send(fd, "CID 4\n", 6);
	test_run(e, &e->naccept, 0, TEST_WAIT_MS);
	assert_int_equal(e->naccept, 1);
	assert_null(e->l);

	test_listen(e);
	fd = test_client(e, 1);
	test_send(fd, "CID 04\n", 7);
	test_client(e, 2);	/* pending when the listener goes */
	test_run(e, &e->nerror, 0, TEST_WAIT_MS);
	assert_int_equal(e->nerror, 1);
	assert_null(e->l);
	test_assert_closed(e->clients[2]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_parse_good),
		cmocka_unit_test(test_addr_parse_bad),
		cmocka_unit_test(test_backend_name),
		cmocka_unit_test(test_cid_line),
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
		T(test_good_client),
		T(test_connect),
		T(test_connect_errors),
		T(test_partial_line),
		T(test_bad_line),
		T(test_eof_before_line),
		T(test_silent_client),
		T(test_dribbling_client),
		T(test_stale_socket),
		T(test_live_socket),
		T(test_not_a_socket),
		T(test_missing_parent),
		T(test_free_with_pending),
		T(test_free_spares_foreign_file),
		T(test_pause),
		T(test_backlog),
		T(test_emfile),
		T(test_free_in_callback),
#undef T
	};

	return cmocka_run_group_tests_name("vmci_shim", tests, NULL, NULL);
}
