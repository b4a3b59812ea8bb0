/*
 * test_fanout.c: end to end, events from simulated agents to several SVMs.
 * Every event is accounted for at every SVM exactly once, in order
 * (delivered, or inside an announced Gap).
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wire.h"

static void
test_fanout_accounting(void **state)
{
	struct e2e *e = *state;
	int p1 = e2e_free_port(), p2 = e2e_free_port(), p3 = e2e_free_port(), st;
	char extra[1024], json[8192], rec1[512], rec2[512], rec3[512], sentp[512];
	const char *a1[] = { "--service-id", "av", "--record", rec1, NULL };
	const char *a2[] = { "--service-id", "edr", "--classes", "file,process",
	    "--record", rec2, NULL };
	const char *a3[] = { "--service-id", "idfw", "--classes", "network,login,vm",
	    "--cids", "3,5,7,9", "--record", rec3, NULL };
	const char *lg[] = { "--agents", "8", "--rate", "4000", "--duration", "3",
	    "--reply-share", "0.2", "--record", sentp, NULL };
	static const uint32_t c3[] = { 3, 5, 7, 9 };
	pid_t s1, s2, s3;
	struct rec *r1, *r2, *r3;
	struct sent *s;
	size_t n1, n2, n3, ns, vm1, vm3;
	int64_t sent, sessions;

	e2e_skip_on_vsock(e, "subscribes by CID (3,5,7,9); in the guest every "
	    "agent is CID 1 (test_vsock covers fan-out there)");
	snprintf(rec1, sizeof(rec1), "%s", e2e_path(e, "svm1.rec"));
	snprintf(rec2, sizeof(rec2), "%s", e2e_path(e, "svm2.rec"));
	snprintf(rec3, sizeof(rec3), "%s", e2e_path(e, "svm3.rec"));
	snprintf(sentp, sizeof(sentp), "%s", e2e_path(e, "sent.rec"));
	snprintf(extra, sizeof(extra),
	    "[svm one]\naddress = 127.0.0.1:%d\nservice_id = av\ntls = off\n"
	    "[svm two]\naddress = 127.0.0.1:%d\nservice_id = edr\ntls = off\n"
	    "[svm three]\naddress = 127.0.0.1:%d\nservice_id = idfw\ntls = off\n",
	    p1, p2, p3);
	e2e_conf(e, extra);
	s1 = e2e_start_svm(e, "svm1", p1, a1);
	s2 = e2e_start_svm(e, "svm2", p2, a2);
	s3 = e2e_start_svm(e, "svm3", p3, a3);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 3, 10000), 0);

	st = e2e_run_loadgen(e, "loadgen", lg);
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json, sizeof(json)), 0);
	print_message("loadgen: %s", json);
	assert_int_equal(st, 0);
	sent = e2e_json_i64(json, "sent");
	sessions = e2e_json_i64(json, "sessions");
	assert_true(sent > 5000);
	assert_int_equal(sessions, 8);
	assert_int_equal(e2e_json_i64(json, "errors"), 0);
	assert_int_equal(e2e_json_i64(json, "missing_verdicts"), 0);
	/* Every reply_expected event got its (default) verdict. */
	assert_int_equal(e2e_json_i64(json, "verdicts"),
	    e2e_json_i64(json, "reply_expected"));

	assert_int_equal(e2e_wait_drained(e, 15000), 0);
	assert_int_equal(e2e_metric(e, "mux_events_received_total{class=\"vm\"}"),
	    (uint64_t)(2 * sessions));
	e2e_stop(e, s1, SIGTERM);
	e2e_stop(e, s2, SIGTERM);
	e2e_stop(e, s3, SIGTERM);

	ns = e2e_read_sent(sentp, &s);
	assert_int_equal((int64_t)ns, sent);
	n1 = e2e_read_records(rec1, &r1);
	n2 = e2e_read_records(rec2, &r2);
	n3 = e2e_read_records(rec3, &r3);
	vm1 = e2e_check_record(e, "svm1 (all)", r1, n1, s, ns, WIRE_CLASS_ALL,
	    NULL, 0);
	/* The full subscriber sees seq 1..N with no hole at all. */
	assert_int_equal(r1[0].seq, 1);
	assert_int_equal(r1[n1 - 1].seq, n1);
	assert_int_equal(vm1, (size_t)(2 * sessions));
	assert_int_equal(e2e_check_record(e, "svm2 (file,process)", r2, n2, s, ns,
	    (1u << MUX__EVENT_CLASS__FILE) | (1u << MUX__EVENT_CLASS__PROCESS),
	    NULL, 0), 0);
	vm3 = e2e_check_record(e, "svm3 (network,login,vm; cids 3,5,7,9)", r3, n3,
	    s, ns,
	    (1u << MUX__EVENT_CLASS__NETWORK) | (1u << MUX__EVENT_CLASS__LOGIN) |
	    (1u << MUX__EVENT_CLASS__VM), c3, 4);
	assert_int_equal(vm3, 2 * 4);

	assert_int_equal(e2e_last_json(e2e_path(e, "svm1.out"), json, sizeof(json)), 0);
	assert_int_equal(e2e_json_i64(json, "holes"), 0);
	assert_int_equal(e2e_json_i64(json, "holes_checked"), 1);
	assert_int_equal(e2e_json_i64(json, "gaps"), 0);
	assert_int_equal(e2e_json_i64(json, "order_errors"), 0);
	assert_int_equal(e2e_json_i64(json, "received"), (int64_t)n1);
	free(r1);
	free(r2);
	free(r3);
	free(s);
}

/*
 * Covered seqs: the union of deliveries and OVERRUN gaps over several
 * records must be every seq from 1 to max; returns how many seqs gaps
 * covered.
 */
static uint64_t
check_covered(struct rec *const *recs, const size_t *n, int nrec, uint64_t max)
{
	unsigned char *seen = calloc(max + 2, 1);
	uint64_t s, gapped = 0, missing = 0;
	size_t i;
	int k;

	assert_non_null(seen);
	for (k = 0; k < nrec; k++)
		for (i = 0; i < n[k]; i++) {
			const struct rec *r = &recs[k][i];

			if (r->gap && r->reason == 1) {
				for (s = r->seq; s <= r->last && s <= max; s++) {
					if (!seen[s])
						gapped++;
					seen[s] |= 2;
				}
			} else if (!r->gap && r->seq <= max)
				seen[r->seq] |= 1;
		}
	for (s = 1; s <= max; s++)
		if (!seen[s]) {
			if (missing < 5)
				print_message("seq %llu neither delivered nor in a gap\n",
				    (unsigned long long)s);
			missing++;
		}
	free(seen);
	if (missing > 0)
		fail_msg("%llu seqs lost silently", (unsigned long long)missing);
	return gapped;
}

/* An SVM killed and restarted resumes: nothing lost beyond announced Gaps. */
static void
test_svm_restart_resume(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), st;
	char extra[512], json[8192], ra[512], rb[512], statep[512], rate[16];
	const char *a1[] = { "--service-id", "av", "--record", ra, "--state", statep,
	    NULL };
	const char *a2[] = { "--service-id", "av", "--record", rb, "--state", statep,
	    NULL };
	const char *lg[] = { "--agents", "4", "--rate", rate, "--duration", "6",
	    NULL };
	struct rec *recs[2];
	size_t n[2];
	pid_t s1, s2, lgpid;
	const char *argv[16];
	char bin[400], conn[400];
	int64_t received;
	uint64_t max;

	snprintf(ra, sizeof(ra), "%s", e2e_path(e, "a.rec"));
	snprintf(rb, sizeof(rb), "%s", e2e_path(e, "b.rec"));
	snprintf(statep, sizeof(statep), "%s", e2e_path(e, "svm.state"));
	snprintf(rate, sizeof(rate), "%d", e->sanitized ? 1000 : 3000);
	snprintf(extra, sizeof(extra), "[svm av]\naddress = 127.0.0.1:%d\n"
	    "service_id = av\ntls = off\n", port);
	e2e_conf(e, extra);
	s1 = e2e_start_svm(e, "svm-a", port, a1);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);

	/* Run the agents in the background while the SVM dies and returns. */
	snprintf(bin, sizeof(bin), "%s/mux-loadgen", e->bin);
	snprintf(conn, sizeof(conn), "%s", e2e_agent_addr(e));
	argv[0] = bin; argv[1] = "--connect"; argv[2] = conn; argv[3] = "--json";
	argv[4] = "--quiet";
	memcpy(&argv[5], lg, sizeof(lg));
	lgpid = e2e_spawn(e, "loadgen", argv);
	usleep(2000 * 1000);
	kill(s1, SIGKILL);		/* no goodbye: state file as last saved */
	assert_int_equal(e2e_wait_exit(s1, 5000, &st), 0);
	usleep(1000 * 1000);
	s2 = e2e_start_svm(e, "svm-b", port, a2);
	assert_int_equal(e2e_wait_exit(lgpid, e2e_timeout_ms(e, 60000), &st), 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json, sizeof(json)), 0);
	assert_int_equal(e2e_json_i64(json, "errors"), 0);
	assert_int_equal(e2e_wait_svms_up(e, 1, 15000), 0);
	assert_int_equal(e2e_wait_drained(e, 15000), 0);
	e2e_stop(e, s2, SIGTERM);

	assert_int_equal(e2e_last_json(e2e_path(e, "svm-b.out"), json, sizeof(json)), 0);
	print_message("restarted svm: %s", json);
	received = e2e_json_i64(json, "received");
	assert_true(received > 0);
	assert_int_equal(e2e_json_i64(json, "holes"), 0);
	assert_int_equal(e2e_json_i64(json, "order_errors"), 0);
	/* It resumed in the same epoch: no EPOCH_CHANGED. */
	assert_int_equal(e2e_json_i64(json, "epoch_changes"), 0);
	n[0] = e2e_read_records(ra, &recs[0]);
	n[1] = e2e_read_records(rb, &recs[1]);
	assert_true(n[0] > 0 && n[1] > 0);
	/* The restarted one started where the state file said, not live. */
	assert_true(recs[1][0].seq <= recs[0][n[0] - 1].seq + 1 || recs[1][0].gap);
	max = (uint64_t)e2e_metric(e, "mux_events_received_total{class=\"file\"}") +
	    e2e_metric(e, "mux_events_received_total{class=\"network\"}") +
	    e2e_metric(e, "mux_events_received_total{class=\"process\"}") +
	    e2e_metric(e, "mux_events_received_total{class=\"login\"}") +
	    e2e_metric(e, "mux_events_received_total{class=\"vm\"}");
	print_message("%llu seqs; gaps covered %llu\n", (unsigned long long)max,
	    (unsigned long long)check_covered(recs, n, 2, max));
	free(recs[0]);
	free(recs[1]);
}

/*
 * A slow SVM falls behind a small ring and gets Gaps, while a fast one
 * keeps full speed and misses nothing; muxd's memory stays bounded.
 */
static void
test_slow_svm_gets_gaps(void **state)
{
	struct e2e *e = *state;
	int pf = e2e_free_port(), ps = e2e_free_port(), st;
	char extra[1024], json[8192], rf[512], rs[512];
	const char *af[] = { "--service-id", "fast", "--record", rf, NULL };
	const char *as[] = { "--service-id", "slow", "--record", rs,
	    "--process-us", "500", "--window", "64", NULL };
	const char *lg[] = { "--agents", "8", "--rate", "12000", "--duration", "5",
	    "--payload", "400", NULL };
	const char *argv[24];
	char bin[400], conn[400];
	struct rec *recs[1];
	size_t n[1];
	long rss, rss_max = 0;
	pid_t sf, ss, lgpid;
	uint64_t max, gapped;
	int64_t fast_recv;

	snprintf(rf, sizeof(rf), "%s", e2e_path(e, "fast.rec"));
	snprintf(rs, sizeof(rs), "%s", e2e_path(e, "slow.rec"));
	/* 2 MiB / 4096 events of retention: the slow SVM must overrun it. */
	snprintf(extra, sizeof(extra),
	    "[limits]\nring_bytes = 2M\nring_events = 4096\n"
	    "agent_max_frame = 64K\n"
	    "[svm fast]\naddress = 127.0.0.1:%d\nservice_id = fast\ntls = off\n"
	    "[svm slow]\naddress = 127.0.0.1:%d\nservice_id = slow\ntls = off\n",
	    pf, ps);
	e2e_conf(e, extra);
	sf = e2e_start_svm(e, "fast", pf, af);
	ss = e2e_start_svm(e, "slow", ps, as);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 2, 10000), 0);

	snprintf(bin, sizeof(bin), "%s/mux-loadgen", e->bin);
	snprintf(conn, sizeof(conn), "%s", e2e_agent_addr(e));
	argv[0] = bin; argv[1] = "--connect"; argv[2] = conn; argv[3] = "--json";
	argv[4] = "--quiet";
	memcpy(&argv[5], lg, sizeof(lg));
	lgpid = e2e_spawn(e, "loadgen", argv);
	while (e2e_wait_exit(lgpid, 200, &st) == -1) {
		rss = e2e_rss_kib(e->muxd);
		if (rss > rss_max)
			rss_max = rss;
	}
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json, sizeof(json)), 0);
	print_message("loadgen: sent %lld, %.0f ev/s; muxd max RSS %ld KiB\n",
	    (long long)e2e_json_i64(json, "sent"), e2e_json_f(json, "events_per_sec"),
	    rss_max);
	assert_int_equal(e2e_json_i64(json, "errors"), 0);
	/* Bounded: 2 MiB ring + socket buffers, far below what 5 s of load is. */
	if (!e->sanitized)
		assert_true(rss_max < 64 * 1024);
	assert_int_equal(e2e_wait_drained(e, 30000), 0);
	e2e_stop(e, sf, SIGTERM);
	e2e_stop(e, ss, SIGTERM);

	max = e2e_metric(e, "mux_events_received_total{class=\"file\"}") +
	    e2e_metric(e, "mux_events_received_total{class=\"network\"}") +
	    e2e_metric(e, "mux_events_received_total{class=\"process\"}") +
	    e2e_metric(e, "mux_events_received_total{class=\"login\"}") +
	    e2e_metric(e, "mux_events_received_total{class=\"vm\"}");
	assert_int_equal(e2e_last_json(e2e_path(e, "fast.out"), json, sizeof(json)), 0);
	fast_recv = e2e_json_i64(json, "received");
	assert_int_equal(e2e_json_i64(json, "gaps"), 0);
	assert_int_equal(e2e_json_i64(json, "holes"), 0);
	assert_int_equal((uint64_t)fast_recv, max);
	assert_int_equal(e2e_last_json(e2e_path(e, "slow.out"), json, sizeof(json)), 0);
	print_message("slow svm: %s", json);
	assert_true(e2e_json_i64(json, "gaps") > 0);
	assert_true(e2e_json_i64(json, "gap_events") > 0);
	assert_int_equal(e2e_json_i64(json, "holes"), 0);
	assert_int_equal(e2e_json_i64(json, "order_errors"), 0);
	assert_true(e2e_metric(e, "mux_gap_events_total{svm=\"slow\"}") > 0);
	assert_int_equal(e2e_metric(e, "mux_gap_events_total{svm=\"fast\"}"), 0);
	n[0] = e2e_read_records(rs, &recs[0]);
	gapped = check_covered(recs, n, 1, max);
	assert_true(gapped > 0);
	assert_int_equal((int64_t)gapped, e2e_json_i64(json, "gap_events"));
	free(recs[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fanout_accounting, e2e_setup,
		    e2e_teardown),
		cmocka_unit_test_setup_teardown(test_svm_restart_resume, e2e_setup,
		    e2e_teardown),
		cmocka_unit_test_setup_teardown(test_slow_svm_gets_gaps, e2e_setup,
		    e2e_teardown),
	};

	return cmocka_run_group_tests_name("e2e_fanout", tests, NULL, NULL);
}
