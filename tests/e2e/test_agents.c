/*
 * test_agents.c: end to end, the agent link: malformed input closes only
 * the offending connection (with its counter), limits, identity, default
 * verdicts.
 */
#include "harness.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "mux.pb-c.h"

static void
send_events(int fd, Mux__Event **ev, size_t n)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__EventBatch b = MUX__EVENT_BATCH__INIT;

	b.events = ev;
	b.n_events = n;
	m.msg_case = MUX__AGENT_MESSAGE__MSG_EVENTS;
	m.events = &b;
	e2e_agent_send(fd, &m);
}

enum bad_kind {
	BAD_ZERO_LEN,
	BAD_TOO_BIG,
	BAD_GARBAGE,
	BAD_NO_HELLO,
	BAD_EVENT_ORDER,
	BAD_ENUM,
	BAD_REPLY,
	BAD_BUDGET,
	BAD_SPOOF,
	BAD__MAX,
};

static const char *const bad_reason[BAD__MAX] = {
	"empty_frame", "frame_too_big", "decode", "unexpected_message",
	"event_id_order", "bad_enum", "reply_not_allowed", "alloc_budget",
	"spoofed_vm_event",
};

/* One malformed connection of each kind. */
static void
misbehave(struct e2e *e, enum bad_kind k, uint32_t cid)
{
	Mux__Event ev1 = MUX__EVENT__INIT, ev2 = MUX__EVENT__INIT, *pe[2];
	Mux__FileEvent f = MUX__FILE_EVENT__INIT;
	Mux__VmEvent v = MUX__VM_EVENT__INIT;
	uint8_t garbage[64], *bomb;
	int fd = e2e_raw_agent(e, cid);
	size_t i;

	if (k != BAD_ZERO_LEN && k != BAD_TOO_BIG && k != BAD_GARBAGE &&
	    k != BAD_NO_HELLO) {
		e2e_agent_send_hello(fd, 1, NULL);
		assert_int_equal(e2e_agent_read_until(fd, MUX__MUX_TO_AGENT__MSG_WELCOME, NULL), 0);
	}
	f.op = MUX__FILE_EVENT__OP__OPEN;
	f.path = (char *)"/etc/passwd";
	ev1.body_case = ev2.body_case = MUX__EVENT__BODY_FILE;
	ev1.file = ev2.file = &f;
	ev1.event_id = 5;
	ev2.event_id = 6;
	pe[0] = &ev1;
	pe[1] = &ev2;
	switch (k) {
	case BAD_ZERO_LEN:
		assert_int_equal(e2e_send_frame(fd, NULL, 0), 0);
		break;
	case BAD_TOO_BIG:
		/* Only the header: it is judged before any body arrives. */
		garbage[0] = 0; garbage[1] = 1; garbage[2] = 0; garbage[3] = 1;
		assert_int_equal(write(fd, garbage, 4), 4);
		break;
	case BAD_GARBAGE:
		memset(garbage, 0xff, sizeof(garbage));
		assert_int_equal(e2e_send_frame(fd, garbage, sizeof(garbage)), 0);
		break;
	case BAD_NO_HELLO:
		send_events(fd, pe, 1);
		break;
	case BAD_EVENT_ORDER:
		ev2.event_id = 5;
		send_events(fd, pe, 2);
		break;
	case BAD_ENUM:
		f.op = MUX__FILE_EVENT__OP__OP_UNSPECIFIED;
		send_events(fd, pe, 1);
		break;
	case BAD_REPLY:
		f.op = MUX__FILE_EVENT__OP__CLOSE;
		ev1.reply_expected = 1;
		send_events(fd, pe, 1);
		break;
	case BAD_BUDGET:
		/* An AgentMessage{events{ 20000 x empty Event }}: 40 KB on the
		 * wire, megabytes once decoded. */
		bomb = malloc(64 * 1024);
		assert_non_null(bomb);
		{
			size_t n = 0, inner = 20000 * 2;

			bomb[n++] = (2 << 3) | 2;	/* AgentMessage.events */
			while (inner >= 0x80) {
				bomb[n++] = (uint8_t)(inner | 0x80);
				inner >>= 7;
			}
			bomb[n++] = (uint8_t)inner;
			for (i = 0; i < 20000; i++) {
				bomb[n++] = (1 << 3) | 2;	/* EventBatch.events */
				bomb[n++] = 0;
			}
			assert_int_equal(e2e_send_frame(fd, bomb, (uint32_t)n), 0);
		}
		free(bomb);
		break;
	case BAD_SPOOF:
		v.op = MUX__VM_EVENT__OP__AGENT_CONNECTED;
		ev1.body_case = MUX__EVENT__BODY_VM;
		ev1.vm = &v;
		send_events(fd, pe, 1);
		break;
	default:
		break;
	}
	if (!e2e_wait_closed(fd, e2e_timeout_ms(e, 3000)))
		fail_msg("muxd kept the connection open after %s", bad_reason[k]);
	close(fd);
}

static void
test_malformed_closes_only_that_agent(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), st, k, fd;
	char extra[512], json[8192], metric[128], bin[400], conn[400];
	const char *sv[] = { "--service-id", "av", NULL };
	const char *argv[] = { bin, "--connect", conn, "--json", "--quiet",
	    "--agents", "4", "--rate", "2000", "--duration", "4", NULL };
	pid_t svm, lg;
	int64_t sent;

	snprintf(extra, sizeof(extra), "[svm av]\naddress = 127.0.0.1:%d\n"
	    "service_id = av\ntls = off\n", port);
	e2e_conf(e, extra);
	svm = e2e_start_svm(e, "svm", port, sv);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	snprintf(bin, sizeof(bin), "%s/mux-loadgen", e->bin);
	snprintf(conn, sizeof(conn), "%s", e2e_agent_addr(e));
	lg = e2e_spawn(e, "loadgen", argv);
	usleep(500 * 1000);

	for (k = 0; k < BAD__MAX; k++) {
		misbehave(e, (enum bad_kind)k, 100 + (uint32_t)k);
		snprintf(metric, sizeof(metric),
		    "mux_protocol_errors_total{link=\"agent\",reason=\"%s\"}", bad_reason[k]);
		assert_int_equal(e2e_metric(e, metric), 1);
	}
	fd = e2e_raw_agent(e, 200);	/* a good line, then a wrong version */
	e2e_agent_send_hello(fd, 2, NULL);
	assert_int_equal(e2e_agent_read_until(fd, MUX__MUX_TO_AGENT__MSG_REJECT, NULL), 0);
	assert_true(e2e_wait_closed(fd, 3000));
	close(fd);
	assert_int_equal(e2e_metric(e,
	    "mux_protocol_errors_total{link=\"agent\",reason=\"version\"}"), 1);

	assert_int_equal(e2e_wait_exit(lg, e2e_timeout_ms(e, 60000), &st), 0);
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json, sizeof(json)), 0);
	assert_int_equal(e2e_json_i64(json, "errors"), 0);
	assert_int_equal(e2e_json_i64(json, "disconnects"), 0);
	sent = e2e_json_i64(json, "sent");
	assert_int_equal(e2e_wait_drained(e, 15000), 0);
	e2e_stop(e, svm, SIGTERM);
	assert_int_equal(e2e_last_json(e2e_path(e, "svm.out"), json, sizeof(json)), 0);
	/* All good events arrived; the bad connections added only VM events
	 * for the ones that were welcomed (connected + disconnected). */
	assert_int_equal(e2e_json_i64(json, "holes"), 0);
	assert_true(e2e_json_i64(json, "received") >= sent + 8);
	assert_int_equal(kill(e->muxd, 0), 0);	/* still alive */
}

static void
test_bad_cid_line(void **state)
{
	struct e2e *e = *state;
	char line[] = "CID 0\n";
	int fd;

	e2e_skip_on_vsock(e, "the CID line exists only on the unix transport");
	e2e_conf(e, NULL);
	e2e_start_muxd(e);
	/* Raw unix connect, then a CID line the protocol forbids (CID 0). */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	{
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		assert_true(strlen(e->agent_sock) < sizeof(sun.sun_path));
		memcpy(sun.sun_path, e->agent_sock, strlen(e->agent_sock) + 1);
		assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	}
	assert_int_equal(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	assert_true(e2e_wait_closed(fd, 3000));
	close(fd);
	assert_int_equal(e2e_metric(e,
	    "mux_protocol_errors_total{link=\"agent\",reason=\"cid_line\"}"), 1);
}

static void
test_connection_limit_per_vm(void **state)
{
	struct e2e *e = *state;
	int fd[3], i;

	e2e_conf(e, "[limits]\nagent_max_connections_per_vm = 2\n");
	e2e_start_muxd(e);
	for (i = 0; i < 3; i++)
		fd[i] = e2e_raw_agent(e, 42);
	/* The third is refused with OVERLOADED and closed. */
	assert_int_equal(e2e_agent_read_until(fd[2], MUX__MUX_TO_AGENT__MSG_REJECT, NULL), 0);
	assert_true(e2e_wait_closed(fd[2], 3000));
	for (i = 0; i < 2; i++) {
		e2e_agent_send_hello(fd[i], 1, NULL);
		assert_int_equal(e2e_agent_read_until(fd[i], MUX__MUX_TO_AGENT__MSG_WELCOME, NULL), 0);
		assert_int_equal(e2e_agent_read_until(fd[i], MUX__MUX_TO_AGENT__MSG_SOLUTIONS, NULL), 0);
	}
	assert_int_equal(e2e_metric(e, "mux_events_dropped_total{reason=\"conn_limit\"}"), 1);
	usleep(400 * 1000);
	assert_int_equal(e2e_metric(e, "mux_agents_connected"), 2);
	for (i = 0; i < 3; i++)
		close(fd[i]);
}

/* No SVM: every reply_expected event gets the default verdict at once. */
static void
run_default_verdicts(struct e2e *e, int fail_closed)
{
	const char *lg[] = { "--agents", "3", "--rate", "3000", "--duration", "2",
	    "--reply-share", "0.5", NULL };
	char json[8192];
	int st;

	e2e_conf(e, fail_closed ? "fail_closed = true\n" : NULL);
	e2e_start_muxd(e);
	st = e2e_run_loadgen(e, "loadgen", lg);
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json, sizeof(json)), 0);
	print_message("%s: %s", fail_closed ? "fail-closed" : "fail-open", json);
	assert_int_equal(st, 0);
	assert_true(e2e_json_i64(json, "verdicts") > 1000);
	assert_int_equal(e2e_json_i64(json, "verdicts"),
	    e2e_json_i64(json, "reply_expected"));
	assert_int_equal(e2e_json_i64(json, "missing_verdicts"), 0);
	assert_int_equal(e2e_json_i64(json, fail_closed ? "deny" : "allow"),
	    e2e_json_i64(json, "verdicts"));
	assert_int_equal(e2e_json_i64(json, "no-solution"), e2e_json_i64(json, "verdicts"));
	assert_int_equal(e2e_metric(e, fail_closed ?
	    "mux_verdicts_total{action=\"deny\",source=\"default\"}" :
	    "mux_verdicts_total{action=\"allow\",source=\"default\"}"),
	    (uint64_t)e2e_json_i64(json, "verdicts"));
}

static void
test_default_verdict_fail_open(void **state)
{
	run_default_verdicts(*state, 0);
}

static void
test_default_verdict_fail_closed(void **state)
{
	run_default_verdicts(*state, 1);
}

/* Identity comes from the transport; a different claim is counted. */
static void
test_identity_from_transport(void **state)
{
	struct e2e *e = *state;
	const char *args[] = { "--json", "agents", NULL };
	char extra[600], out[8192];
	FILE *f;
	Mux__MuxToAgent *w;
	int fd;

	e2e_skip_on_vsock(e, "needs an agent with CID 77; in the guest "
	    "every peer is CID 1");
	snprintf(extra, sizeof(extra), "vm_map = %s\n", e2e_path(e, "vm.map"));
	f = fopen(e2e_path(e, "vm.map"), "w");
	assert_non_null(f);
	fprintf(f, "# cid uuid name\n77 4c4c4544-0000-0000-0000-000000000077 web server 7\n");
	fclose(f);
	e2e_conf(e, extra);
	e2e_start_muxd(e);
	fd = e2e_raw_agent(e, 77);
	e2e_agent_send_hello(fd, 1, "someone-else");
	assert_int_equal(e2e_agent_read_until(fd, MUX__MUX_TO_AGENT__MSG_WELCOME, &w), 0);
	assert_int_equal(w->welcome->cid, 77);
	assert_int_equal(w->welcome->protocol_version, 1);
	assert_true(w->welcome->session_id != 0);
	mux__mux_to_agent__free_unpacked(w, NULL);
	usleep(400 * 1000);
	assert_int_equal(e2e_metric(e, "mux_identity_mismatch_total"), 1);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), args), 0);
	assert_non_null(strstr(out, "\"vm_uuid\":\"4c4c4544-0000-0000-0000-000000000077\""));
	assert_non_null(strstr(out, "\"vm_name\":\"web server 7\""));
	assert_non_null(strstr(out, "\"claimed_vm_uuid\":\"someone-else\""));
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_malformed_closes_only_that_agent,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_bad_cid_line, e2e_setup,
		    e2e_teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit_per_vm,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_default_verdict_fail_open,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_default_verdict_fail_closed,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_identity_from_transport,
		    e2e_setup, e2e_teardown),
	};

	return cmocka_run_group_tests_name("e2e_agents", tests, NULL, NULL);
}
