/*
 * test_svms.c: end to end, the SVM link: registration refusals (duplicate,
 * not authorized, version), heartbeats, VmStatus and SolutionState.
 */
#include "harness.h"

#include <sys/socket.h>

#include <netinet/in.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "mux.pb-c.h"

/* ---- a raw SVM written in the test, for what mux-svm never does ---- */

static int
raw_listen(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static int
raw_accept(int lfd, int timeout_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) != 1)
		fail_msg("muxd did not dial the raw SVM");
	return accept(lfd, NULL, NULL);
}

static Mux__MuxToSvm *
raw_read(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint8_t hdr[4], *body;
	uint32_t len, got = 0;
	Mux__MuxToSvm *m;
	ssize_t r;

	if (poll(&p, 1, timeout_ms) != 1 || read(fd, hdr, 4) != 4)
		return NULL;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	body = malloc(len + 1);
	assert_non_null(body);
	while (got < len && (r = read(fd, body + got, len - got)) > 0)
		got += (uint32_t)r;
	m = got == len ? mux__mux_to_svm__unpack(NULL, len, body) : NULL;
	free(body);
	return m;
}

static void
raw_send(int fd, const Mux__SvmToMux *m)
{
	size_t n = mux__svm_to_mux__get_packed_size(m);
	uint8_t *buf = malloc(n + 1);

	assert_non_null(buf);
	mux__svm_to_mux__pack(m, buf);
	assert_int_equal(e2e_send_frame(fd, buf, (uint32_t)n), 0);
	free(buf);
}

static void
raw_register(int fd, uint32_t version, const char *service)
{
	Mux__SvmToMux m = MUX__SVM_TO_MUX__INIT;
	Mux__Register r = MUX__REGISTER__INIT;

	r.protocol_version = version;
	r.service_id = (char *)service;
	r.instance_id = (char *)"raw-1";
	m.msg_case = MUX__SVM_TO_MUX__MSG_REGISTER;
	m.register_ = &r;
	raw_send(fd, &m);
}

static void
conf_one(struct e2e *e, int port, const char *service, const char *more)
{
	char extra[512];

	snprintf(extra, sizeof(extra), "%s[svm raw]\naddress = 127.0.0.1:%d\n"
	    "service_id = %s\ntls = off\n", more != NULL ? more : "", port, service);
	e2e_conf(e, extra);
}

static void
test_svm_version_mismatch(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), lfd = raw_listen(port), fd;
	Mux__MuxToSvm *m;

	conf_one(e, port, "av", NULL);
	e2e_start_muxd(e);
	fd = raw_accept(lfd, e2e_timeout_ms(e, 5000));
	m = raw_read(fd, 3000);
	assert_non_null(m);
	assert_int_equal(m->msg_case, MUX__MUX_TO_SVM__MSG_HELLO);
	assert_int_equal(m->hello->protocol_version, 1);
	assert_true(m->hello->epoch != 0);
	assert_true(m->hello->heartbeat_ms > 0);
	assert_true(m->hello->host_id[0] != '\0');
	mux__mux_to_svm__free_unpacked(m, NULL);
	raw_register(fd, 2, "av");
	m = raw_read(fd, 3000);
	assert_non_null(m);
	assert_int_equal(m->msg_case, MUX__MUX_TO_SVM__MSG_REJECT);
	assert_int_equal(m->reject->code, MUX__REJECT__CODE__VERSION_MISMATCH);
	mux__mux_to_svm__free_unpacked(m, NULL);
	assert_true(e2e_wait_closed(fd, 3000));
	close(fd);
	assert_int_equal(e2e_metric(e,
	    "mux_protocol_errors_total{link=\"svm\",reason=\"version\"}"), 1);
	close(lfd);
}

static void
test_svm_not_authorized(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), lfd = raw_listen(port), fd;
	Mux__MuxToSvm *m;

	conf_one(e, port, "av", NULL);
	e2e_start_muxd(e);
	fd = raw_accept(lfd, e2e_timeout_ms(e, 5000));
	m = raw_read(fd, 3000);
	assert_non_null(m);
	mux__mux_to_svm__free_unpacked(m, NULL);
	raw_register(fd, 1, "not-av");
	m = raw_read(fd, 3000);
	assert_non_null(m);
	assert_int_equal(m->msg_case, MUX__MUX_TO_SVM__MSG_REJECT);
	assert_int_equal(m->reject->code, MUX__REJECT__CODE__NOT_AUTHORIZED);
	mux__mux_to_svm__free_unpacked(m, NULL);
	assert_true(e2e_wait_closed(fd, 3000));
	close(fd);
	assert_true(e2e_metric(e, "mux_svm_rejects_total") >= 1);
	close(lfd);
}

/* Registered, then silent: the MUX heartbeats, then drops it. */
static void
test_svm_heartbeats(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), lfd = raw_listen(port), fd, hb = 0, reg = 0;
	Mux__MuxToSvm *m;

	conf_one(e, port, "av", "heartbeat_ms = 200\n");
	e2e_start_muxd(e);
	fd = raw_accept(lfd, e2e_timeout_ms(e, 5000));
	m = raw_read(fd, 3000);
	assert_non_null(m);
	assert_int_equal(m->hello->heartbeat_ms, 200);
	mux__mux_to_svm__free_unpacked(m, NULL);
	raw_register(fd, 1, "av");
	while ((m = raw_read(fd, 2000)) != NULL) {
		if (m->msg_case == MUX__MUX_TO_SVM__MSG_REGISTERED) {
			reg++;
			assert_true(m->registered->epoch != 0);
			assert_int_equal(m->registered->next_seq, 1);
			assert_int_equal(m->registered->oldest_seq, 1);
		}
		if (m->msg_case == MUX__MUX_TO_SVM__MSG_HEARTBEAT)
			hb++;
		mux__mux_to_svm__free_unpacked(m, NULL);
	}
	/* 3 silent intervals of 200 ms: gone, after a few heartbeats. */
	assert_int_equal(reg, 1);
	assert_true(hb >= 2);
	assert_true(e2e_wait_closed(fd, 2000));
	close(fd);
	assert_int_equal(e2e_metric(e,
	    "mux_protocol_errors_total{link=\"svm\",reason=\"heartbeat_timeout\"}"), 1);
	close(lfd);
}

/*
 * Two [svm] entries reach two processes claiming the same service and
 * instance: one is registered, the other refused DUPLICATE, never doubled.
 * When the first goes away, the second gets in on its next redial.
 */
static void
test_duplicate_registration(void **state)
{
	struct e2e *e = *state;
	int p1 = e2e_free_port(), p2 = e2e_free_port();
	const char *args[] = { "--service-id", "av", "--instance-id", "same", NULL };
	const char *ctl[] = { "--json", "svms", NULL };
	char extra[600], out[8192], json[4096];
	pid_t a, b, loser, winner;
	int64_t rej_a, rej_b;

	snprintf(extra, sizeof(extra),
	    "[svm first]\naddress = 127.0.0.1:%d\nservice_id = av\ntls = off\n"
	    "[svm second]\naddress = 127.0.0.1:%d\nservice_id = av\ntls = off\n",
	    p1, p2);
	e2e_conf(e, extra);
	a = e2e_start_svm(e, "svm-a", p1, args);
	b = e2e_start_svm(e, "svm-b", p2, args);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	usleep(1500 * 1000);	/* several redials of the refused one */
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), ctl), 0);
	assert_non_null(strstr(out, "\"state\":\"up\""));
	assert_null(strstr(strstr(out, "\"state\":\"up\"") + 1, "\"state\":\"up\""));
	assert_non_null(strstr(out, "already registered"));
	assert_true(e2e_metric(e, "mux_svm_rejects_total") >= 1);
	assert_int_equal(e2e_metric(e, "mux_svms_up"), 1);

	/* Which one won? The loser counted rejects. */
	e2e_stop(e, a, SIGTERM);
	assert_int_equal(e2e_last_json(e2e_path(e, "svm-a.out"), json, sizeof(json)), 0);
	rej_a = e2e_json_i64(json, "rejects");
	winner = rej_a == 0 ? a : b;
	loser = rej_a == 0 ? b : a;
	(void)winner;
	if (loser == b) {
		/* a (the winner) is gone: b registers on its next redial. */
		assert_int_equal(e2e_wait_svms_up(e, 1, 15000), 0);
		e2e_stop(e, b, SIGTERM);
		assert_int_equal(e2e_last_json(e2e_path(e, "svm-b.out"), json,
		    sizeof(json)), 0);
		rej_b = e2e_json_i64(json, "rejects");
		assert_true(rej_b >= 1);
		assert_int_equal(e2e_json_i64(json, "registered"), 1);
	} else {
		assert_true(rej_a >= 1);
		e2e_stop(e, b, SIGTERM);
	}
}

/* A late SVM gets VmStatus for connected VMs; agents get SolutionState. */
static void
test_vm_status_and_solutions(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), st;
	const char *args[] = { "--service-id", "av", "--classes", "file", NULL };
	char extra[512], json[8192], bin[400], conn[400];
	const char *argv[] = { bin, "--connect", conn, "--json", "--quiet",
	    "--agents", "3", "--rate", "300", "--duration", "3", NULL };
	pid_t lg, svm;

	e2e_skip_on_vsock(e, "counts VmStatus of 3 VMs; in the guest every "
	    "agent is CID 1");
	snprintf(extra, sizeof(extra), "[svm av]\naddress = 127.0.0.1:%d\n"
	    "service_id = av\ntls = off\n", port);
	e2e_conf(e, extra);
	e2e_start_muxd(e);
	snprintf(bin, sizeof(bin), "%s/mux-loadgen", e->bin);
	snprintf(conn, sizeof(conn), "%s", e2e_agent_addr(e));
	lg = e2e_spawn(e, "loadgen", argv);
	usleep(1000 * 1000);
	svm = e2e_start_svm(e, "svm", port, args);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	usleep(500 * 1000);
	e2e_stop(e, svm, SIGTERM);
	assert_int_equal(e2e_wait_exit(lg, e2e_timeout_ms(e, 30000), &st), 0);
	assert_int_equal(e2e_last_json(e2e_path(e, "svm.out"), json, sizeof(json)), 0);
	print_message("svm: %s", json);
	/* The three VMs were connected when it registered. */
	assert_true(e2e_json_i64(json, "vm_status") >= 3);
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json, sizeof(json)), 0);
	print_message("loadgen: %s", json);
	/* Full state at welcome (down), on up, on down again: 3 per agent. */
	assert_true(e2e_json_i64(json, "solution_updates") >= 9);
	assert_true(e2e_json_i64(json, "solution_generation") >= 3);
}

static void
test_muxctl_without_daemon(void **state)
{
	struct e2e *e = *state;
	const char *args[] = { "status", NULL };
	char out[1024];

	assert_int_equal(e2e_muxctl(e, out, sizeof(out), args), 1);
	assert_non_null(strstr(out, "cannot connect"));
}

/* The host's word on VMs: `muxctl vm map` and `muxctl vm event`. */
static void
test_vm_map_and_events(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), fd;
	const char *sv[] = { "--service-id", "av", NULL };
	const char *map[] = { "vm", "map", "60", "4c4c4544-0060", "db-server", NULL };
	const char *off[] = { "vm", "event", "60", "powered_off", NULL };
	const char *bad[] = { "vm", "event", "60", "exploded", NULL };
	const char *badcid[] = { "vm", "event", "2", "powered_on", NULL };
	const char *ag[] = { "--json", "agents", NULL };
	char extra[512], out[8192], json[8192];
	pid_t svm;

	snprintf(extra, sizeof(extra), "[svm av]\naddress = 127.0.0.1:%d\n"
	    "service_id = av\ntls = off\n", port);
	e2e_conf(e, extra);
	svm = e2e_start_svm(e, "svm", port, sv);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	fd = e2e_raw_agent(e, 60);
	e2e_agent_handshake(fd, NULL);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), map), 0);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), off), 0);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), bad), 1);
	assert_non_null(strstr(out, "unknown state"));
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), badcid), 1);
	usleep(400 * 1000);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), ag), 0);
	assert_non_null(strstr(out, "\"vm_name\":\"db-server\""));
	assert_non_null(strstr(out, "\"vm_uuid\":\"4c4c4544-0060\""));
	/* AGENT_CONNECTED, then POWERED_OFF made from the host's word. */
	assert_int_equal(e2e_metric(e, "mux_events_received_total{class=\"vm\"}"), 2);
	assert_int_equal(e2e_wait_drained(e, 10000), 0);
	e2e_stop(e, svm, SIGTERM);
	close(fd);
	assert_int_equal(e2e_last_json(e2e_path(e, "svm.out"), json, sizeof(json)), 0);
	/* CONNECTED, CONNECTED with the mapped identity, POWERED_OFF. */
	assert_int_equal(e2e_json_i64(json, "vm_status"), 3);
	assert_int_equal(e2e_json_i64(json, "received"), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_svm_version_mismatch, e2e_setup,
		    e2e_teardown),
		cmocka_unit_test_setup_teardown(test_svm_not_authorized, e2e_setup,
		    e2e_teardown),
		cmocka_unit_test_setup_teardown(test_svm_heartbeats, e2e_setup,
		    e2e_teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_registration,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_vm_status_and_solutions,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_muxctl_without_daemon,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_vm_map_and_events,
		    e2e_setup, e2e_teardown),
	};

	return cmocka_run_group_tests_name("e2e_svms", tests, NULL, NULL);
}
