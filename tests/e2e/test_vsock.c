/*
 * test_vsock.c: end to end, written for the vsock guest (tests/vsock) and
 * run on the unix backend too: the agent-link cases that must hold on the
 * real transport. Handshake and fan-out with every event accounted for, an
 * agent that disconnects abruptly, the daemon restarting while agents
 * reconnect, and 200 agents at once. Nothing here depends on distinct
 * CIDs: in the guest every agent is CID 1 (E2E_VSOCK_CID).
 */
#include "harness.h"

#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "mux.pb-c.h"
#include "wire.h"

#define RAW_CID		3	/* what a raw agent asks for (unix only) */

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The CID muxd stamps on an agent that asked for `cid`. */
static uint32_t
stamped_cid(struct e2e *e, uint32_t cid)
{
	return e->vsock ? E2E_VSOCK_CID : cid;
}

/* 1 when a line of path contains needle. */
static int
file_has(const char *path, const char *needle)
{
	char line[1024];
	FILE *f;
	int found = 0;

	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

/* Polls a metric until it equals want; 0 when it did. */
static int
wait_metric(struct e2e *e, const char *name, uint64_t want, int timeout_ms)
{
	int waited;

	for (waited = 0; waited < e2e_timeout_ms(e, timeout_ms); waited += 100) {
		if (e2e_metric(e, name) == want)
			return 0;
		sleep_ms(100);
	}
	print_message("%s is %llu, want %llu\n", name,
	    (unsigned long long)e2e_metric(e, name), (unsigned long long)want);
	return -1;
}

static uint64_t
received_total(struct e2e *e)
{
	static const char *const cls[] = { "file", "network", "process",
	    "login", "vm" };
	char name[96];
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < sizeof(cls) / sizeof(cls[0]); i++) {
		snprintf(name, sizeof(name),
		    "mux_events_received_total{class=\"%s\"}", cls[i]);
		n += e2e_metric(e, name);
	}
	return n;
}

/*
 * Handshake (the welcome names the CID the transport gave) and fan-out to
 * two SVMs with different subscriptions: every event sent by 8 loadgen
 * connections arrives at each subscriber exactly once, in order, and every
 * verdict owed comes back.
 */
static void
test_vsock_handshake_fanout(void **state)
{
	struct e2e *e = *state;
	int p1 = e2e_free_port(), p2 = e2e_free_port(), st, fd;
	char extra[1024], json[8192], rec1[512], rec2[512], sentp[512];
	const char *a1[] = { "--service-id", "all", "--record", rec1, NULL };
	const char *a2[] = { "--service-id", "fp", "--classes", "file,process",
	    "--record", rec2, NULL };
	const char *lg[] = { "--agents", "4", "--connections-per-vm", "2",
	    "--rate", "2000", "--duration", "3", "--reply-share", "0.2",
	    "--record", sentp, NULL };
	char bin[400], want[400];
	const char *argv2[] = { bin, "-d", "-f", e->conf, NULL };
	pid_t s1, s2, m2;
	struct rec *r1, *r2;
	struct sent *s;
	size_t n1, n2, ns;
	uint64_t session;
	uint32_t cid;
	int64_t sent, sessions;

	snprintf(rec1, sizeof(rec1), "%s", e2e_path(e, "all.rec"));
	snprintf(rec2, sizeof(rec2), "%s", e2e_path(e, "fp.rec"));
	snprintf(sentp, sizeof(sentp), "%s", e2e_path(e, "sent.rec"));
	snprintf(extra, sizeof(extra),
	    "[svm all]\naddress = 127.0.0.1:%d\nservice_id = all\ntls = off\n"
	    "[svm fp]\naddress = 127.0.0.1:%d\nservice_id = fp\ntls = off\n",
	    p1, p2);
	e2e_conf(e, extra);
	s1 = e2e_start_svm(e, "all", p1, a1);
	s2 = e2e_start_svm(e, "fp", p2, a2);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 2, 10000), 0);
	/* muxd says which backend it listens with. */
	assert_true(file_has(e2e_path(e, "muxd.err"), e->vsock ?
	    "(vsock backend, Linux AF_VSOCK (40))" : "(unix backend"));
	/* A second muxd on the same address says why it cannot start. */
	snprintf(bin, sizeof(bin), "%s/muxd", e->bin);
	m2 = e2e_spawn(e, "muxd2", argv2);
	assert_int_equal(e2e_wait_exit(m2, e2e_timeout_ms(e, 5000), &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	if (e->vsock)
		snprintf(want, sizeof(want), "agents: vsock:any:%u: bind (Linux "
		    "AF_VSOCK (40)): %s", e->agent_port, strerror(EADDRINUSE));
	else
		snprintf(want, sizeof(want), "agents: %s: in use", e2e_agent_addr(e));
	if (!file_has(e2e_path(e, "muxd2.err"), want))
		fail_msg("muxd2.err lacks \"%s\"", want);
	print_message("vsock backend: second muxd refused with \"%s\"\n", want);

	/* Handshake: the CID is the transport's, the session is new. */
	fd = e2e_raw_agent(e, RAW_CID);
	session = e2e_agent_handshake(fd, &cid);
	assert_int_equal(cid, stamped_cid(e, RAW_CID));
	assert_true(session != 0);
	print_message("vsock handshake: %s welcomed as cid %u, session %llu\n",
	    e2e_agent_addr(e), stamped_cid(e, RAW_CID),
	    (unsigned long long)session);
	close(fd);

	st = e2e_run_loadgen(e, "loadgen", lg);
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json,
	    sizeof(json)), 0);
	print_message("loadgen: %.400s\n", json);
	assert_int_equal(st, 0);
	sent = e2e_json_i64(json, "sent");
	sessions = e2e_json_i64(json, "sessions");
	assert_true(sent > 1000);
	assert_int_equal(sessions, 8);
	assert_int_equal(e2e_json_i64(json, "errors"), 0);
	assert_int_equal(e2e_json_i64(json, "missing_verdicts"), 0);
	assert_int_equal(e2e_json_i64(json, "verdicts"),
	    e2e_json_i64(json, "reply_expected"));

	assert_int_equal(e2e_wait_drained(e, 15000), 0);
	assert_int_equal(wait_metric(e, "mux_agents_connected", 0, 5000), 0);
	e2e_stop(e, s1, SIGTERM);
	e2e_stop(e, s2, SIGTERM);
	ns = e2e_read_sent(sentp, &s);
	assert_int_equal((int64_t)ns, sent);
	n1 = e2e_read_records(rec1, &r1);
	n2 = e2e_read_records(rec2, &r2);
	/* Connected + disconnected for 8 loadgen sessions and the raw one. */
	assert_int_equal(e2e_check_record(e, "all", r1, n1, s, ns, WIRE_CLASS_ALL,
	    NULL, 0), 2 * (8 + 1));
	assert_int_equal(e2e_check_record(e, "file,process", r2, n2, s, ns,
	    (1u << MUX__EVENT_CLASS__FILE) | (1u << MUX__EVENT_CLASS__PROCESS),
	    NULL, 0), 0);
	assert_int_equal(received_total(e), n1);
	assert_int_equal(e2e_last_json(e2e_path(e, "all.out"), json,
	    sizeof(json)), 0);
	assert_int_equal(e2e_json_i64(json, "holes"), 0);
	assert_int_equal(e2e_json_i64(json, "order_errors"), 0);
	free(r1);
	free(r2);
	free(s);
}

/*
 * Agents that vanish without a goodbye: a mux-loadgen killed with SIGKILL
 * with verdicts pending, and a raw agent that dies inside a frame. muxd
 * notices each connection, ends its obligations, tells the SVM, and the
 * agents that stay are undisturbed.
 */
static void
test_vsock_abrupt_disconnect(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), st, fd;
	char extra[512], json[8192], rec[512], bin[400], conn[400], secs[16];
	const char *sv[] = { "--service-id", "av", "--verdicts", "--policy",
	    "delay:300", "--record", rec, NULL };
	const char *victim[] = { bin, "--connect", conn, "--json", "--quiet",
	    "--agents", "2", "--connections-per-vm", "2", "--rate", "400",
	    "--duration", "30", "--reply-share", "0.5", "--first-cid", "20",
	    NULL };
	/* It must outlive the victim's kill, on an emulated CPU too. */
	const char *stay[] = { bin, "--connect", conn, "--json", "--quiet",
	    "--agents", "2", "--rate", "400", "--duration", secs,
	    "--reply-share", "0.2", NULL };
	uint8_t partial[FRAME_HDR_LEN + 8];
	pid_t svm, lv, ls;
	struct rec *r;
	size_t nr, i, vm = 0;

	snprintf(rec, sizeof(rec), "%s", e2e_path(e, "svm.rec"));
	snprintf(extra, sizeof(extra), "verdict_timeout_ms = 20000\n"
	    "[svm av]\naddress = 127.0.0.1:%d\nservice_id = av\ntls = off\n",
	    port);
	e2e_conf(e, extra);
	svm = e2e_start_svm(e, "svm", port, sv);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	snprintf(bin, sizeof(bin), "%s/mux-loadgen", e->bin);
	snprintf(conn, sizeof(conn), "%s", e2e_agent_addr(e));
	snprintf(secs, sizeof(secs), "%d", e->sanitized ? 10 : 5);
	ls = e2e_spawn(e, "stay", stay);
	lv = e2e_spawn(e, "victim", victim);
	assert_int_equal(wait_metric(e, "mux_agents_connected", 6, 10000), 0);
	sleep_ms(1500);		/* verdicts pending on the victim's links */
	kill(lv, SIGKILL);
	assert_int_equal(e2e_wait_exit(lv, 5000, &st), 0);

	/* A raw agent that dies half way through a frame, owed 5 verdicts. */
	fd = e2e_raw_agent(e, RAW_CID);
	e2e_agent_handshake(fd, NULL);
	e2e_agent_file_events(fd, 1, 5, 1, "/etc/hosts");
	frame_put_header(partial, 100);
	memset(partial + FRAME_HDR_LEN, 0, 8);
	assert_int_equal(write(fd, partial, sizeof(partial)),
	    (ssize_t)sizeof(partial));
	close(fd);

	/* Only the two that stay are left; the victim's obligations ended. */
	assert_int_equal(wait_metric(e, "mux_agents_connected", 2, 5000), 0);
	assert_true(e2e_metric(e, "mux_verdicts_orphaned_total") > 0);
	print_message("abrupt: %llu verdicts orphaned by the killed agents\n",
	    (unsigned long long)e2e_metric(e, "mux_verdicts_orphaned_total"));

	assert_int_equal(e2e_wait_exit(ls, e2e_timeout_ms(e, 60000), &st), 0);
	assert_int_equal(e2e_last_json(e2e_path(e, "stay.out"), json,
	    sizeof(json)), 0);
	print_message("loadgen (stays): %.400s\n", json);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(e2e_json_i64(json, "errors"), 0);
	assert_int_equal(e2e_json_i64(json, "disconnects"), 0);
	assert_int_equal(e2e_json_i64(json, "missing_verdicts"), 0);
	assert_int_equal(e2e_json_i64(json, "verdicts"),
	    e2e_json_i64(json, "reply_expected"));
	assert_int_equal(wait_metric(e, "mux_agents_connected", 0, 5000), 0);
	assert_int_equal(e2e_wait_drained(e, 15000), 0);
	e2e_stop(e, svm, SIGTERM);

	/* Every session, killed or not, was announced and then ended. */
	nr = e2e_read_records(rec, &r);
	for (i = 0; i < nr; i++)
		vm += r[i].cls == MUX__EVENT_CLASS__VM;
	assert_int_equal(vm, 2 * (2 + 4 + 1));
	assert_int_equal(e2e_last_json(e2e_path(e, "svm.out"), json,
	    sizeof(json)), 0);
	assert_int_equal(e2e_json_i64(json, "holes"), 0);
	assert_int_equal(e2e_json_i64(json, "received"), (int64_t)nr);
	assert_int_equal(kill(e->muxd, 0), 0);
	free(r);
}

/*
 * The daemon restarts twice under a running mux-loadgen --reconnect: once
 * stopped cleanly (SIGTERM), once killed (SIGKILL). The agents redial and
 * are welcomed by each new daemon, no agent sees an error, and the new
 * daemon delivers what it receives.
 */
static void
test_vsock_daemon_restart(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), st;
	char extra[512], json[8192], bin[400], conn[400], secs[16];
	const char *sv[] = { "--service-id", "av", NULL };
	/* Long enough to outlive both restarts, on an emulated CPU too. */
	const char *lg[] = { bin, "--connect", conn, "--json", "--quiet",
	    "--agents", "3", "--rate", "600", "--duration", secs,
	    "--reply-share", "0.2", "--reconnect", NULL };
	pid_t svm, lgpid, old;
	uint64_t got;
	int round;

	snprintf(extra, sizeof(extra), "[svm av]\naddress = 127.0.0.1:%d\n"
	    "service_id = av\ntls = off\n", port);
	e2e_conf(e, extra);
	svm = e2e_start_svm(e, "svm", port, sv);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	snprintf(bin, sizeof(bin), "%s/mux-loadgen", e->bin);
	snprintf(conn, sizeof(conn), "%s", e2e_agent_addr(e));
	snprintf(secs, sizeof(secs), "%d", e->sanitized ? 16 : 9);
	lgpid = e2e_spawn(e, "loadgen", lg);

	for (round = 0; round < 2; round++) {
		assert_int_equal(wait_metric(e, "mux_agents_connected", 3,
		    10000), 0);
		sleep_ms(1000);
		assert_true(received_total(e) > 0);
		old = e->muxd;
		kill(old, round == 0 ? SIGTERM : SIGKILL);
		assert_int_equal(e2e_wait_exit(old, e2e_timeout_ms(e, 10000),
		    &st), 0);
		if (round == 0)
			assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		sleep_ms(500);		/* agents find nobody listening */
		e2e_start_muxd(e);
		assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	}
	/* Welcomed by the third daemon too (sessions below). */
	assert_int_equal(wait_metric(e, "mux_agents_connected", 3, 10000), 0);

	assert_int_equal(e2e_wait_exit(lgpid, e2e_timeout_ms(e, 60000), &st), 0);
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json,
	    sizeof(json)), 0);
	print_message("restart: loadgen %.500s\n", json);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(e2e_json_i64(json, "errors"), 0);
	assert_int_equal(e2e_json_i64(json, "connections"), 3);
	assert_true(e2e_json_i64(json, "sessions") >= 9);	/* 3 daemons */
	assert_true(e2e_json_i64(json, "disconnects") >= 6);
	assert_int_equal(e2e_json_i64(json, "missing_verdicts"), 0);

	/* The last daemon delivered all it received. */
	assert_int_equal(e2e_wait_drained(e, 15000), 0);
	got = received_total(e);
	assert_true(got > 0);
	assert_int_equal(e2e_metric(e, "mux_events_delivered_total{svm=\"av\"}"),
	    got);
	e2e_stop(e, svm, SIGTERM);
	assert_int_equal(e2e_last_json(e2e_path(e, "svm.out"), json,
	    sizeof(json)), 0);
	print_message("restart: svm %.300s\n", json);
	assert_int_equal(e2e_json_i64(json, "order_errors"), 0);
	assert_true(e2e_json_i64(json, "epoch_changes") >= 1);
}

/*
 * As many agents over vsock as over unix: 200 connections (in the guest
 * all of one VM, so under the raised per-VM cap), each welcomed, each
 * owed verdict answered.
 */
static void
test_vsock_many_agents(void **state)
{
	struct e2e *e = *state;
	const char *lg[] = { "--agents", "50", "--connections-per-vm", "4",
	    "--rate", "2000", "--duration", "2", "--reply-share", "0.2", NULL };
	char json[8192];
	int st;

	e2e_conf(e, NULL);
	e2e_start_muxd(e);
	st = e2e_run_loadgen(e, "loadgen", lg);
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json,
	    sizeof(json)), 0);
	print_message("loadgen (200 agents): %.300s\n", json);
	assert_int_equal(st, 0);
	assert_int_equal(e2e_json_i64(json, "connections"), 200);
	assert_int_equal(e2e_json_i64(json, "errors"), 0);
	assert_int_equal(e2e_json_i64(json, "verdicts"),
	    e2e_json_i64(json, "reply_expected"));
	assert_true(e2e_json_i64(json, "sent") > 2000);
	assert_int_equal(e2e_metric(e, "mux_agent_sessions_total"), 200);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vsock_handshake_fanout,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_vsock_abrupt_disconnect,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_vsock_daemon_restart,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_vsock_many_agents,
		    e2e_setup, e2e_teardown),
	};

	return cmocka_run_group_tests_name("e2e_vsock", tests, NULL, NULL);
}
