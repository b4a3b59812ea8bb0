/*
 * test_reload.c: end to end, configuration reload (muxctl reload, SIGHUP)
 * and run-time [svm] entries (muxctl svm add / remove).
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
conf_with(struct e2e *e, const char *limits, const int *ports, const char *const *names,
    int n)
{
	char extra[2048];
	size_t len;
	int i;

	snprintf(extra, sizeof(extra), "%s", limits != NULL ? limits : "");
	for (i = 0; i < n; i++) {
		len = strlen(extra);
		snprintf(extra + len, sizeof(extra) - len, "[svm %s]\naddress = "
		    "127.0.0.1:%d\nservice_id = %s\ntls = off\n", names[i], ports[i],
		    names[i]);
	}
	e2e_conf(e, extra);
}

static int
count(const char *s, const char *needle)
{
	int n = 0;

	while ((s = strstr(s, needle)) != NULL) {
		n++;
		s += strlen(needle);
	}
	return n;
}

/* A reload adds and removes [svm] entries while everything else runs. */
static void
test_reload_adds_and_removes_svms(void **state)
{
	struct e2e *e = *state;
	int p[2] = { e2e_free_port(), e2e_free_port() };
	const char *names[2] = { "a", "b" };
	const char *sa[] = { "--service-id", "a", NULL };
	const char *sb[] = { "--service-id", "b", NULL };
	const char *reload[] = { "reload", NULL };
	const char *svms[] = { "--json", "svms", NULL };
	char out[8192];

	conf_with(e, NULL, p, names, 1);
	e2e_start_svm(e, "svm-a", p[0], sa);
	e2e_start_svm(e, "svm-b", p[1], sb);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);

	conf_with(e, NULL, p, names, 2);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), reload), 0);
	print_message("reload: %s", out);
	assert_non_null(strstr(out, "1 added, 0 removed, 0 changed"));
	assert_int_equal(e2e_wait_svms_up(e, 2, 10000), 0);

	/* Keep only b: a goes, b stays up without a redial. */
	conf_with(e, NULL, p + 1, names + 1, 1);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), reload), 0);
	assert_non_null(strstr(out, "0 added, 1 removed, 0 changed"));
	usleep(600 * 1000);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), svms), 0);
	assert_int_equal(count(out, "\"name\":"), 1);
	assert_non_null(strstr(out, "\"name\":\"b\""));
	assert_int_equal(count(out, "\"state\":\"up\""), 1);
	assert_int_equal(count(out, "\"connects\":1,"), 1);
}

/*
 * A damaged file at reload changes nothing: the reason comes back as
 * file:line, the running configuration stays, the last-good copy too.
 */
static void
test_reload_bad_file_keeps_running(void **state)
{
	struct e2e *e = *state;
	int p = e2e_free_port();
	const char *names[1] = { "a" };
	const char *sa[] = { "--service-id", "a", NULL };
	const char *reload[] = { "reload", NULL };
	const char *status[] = { "status", NULL };
	char out[8192], lg[600];
	FILE *f;

	conf_with(e, NULL, &p, names, 1);
	e2e_start_svm(e, "svm-a", p, sa);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	assert_non_null(f = fopen(e->conf, "w"));	/* a full disk: empty */
	fclose(f);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), reload), 1);
	print_message("reload of an empty file: %s", out);
	assert_non_null(strstr(out, "muxd.conf:0: empty file"));
	assert_non_null(strstr(out, "the running configuration stays"));
	assert_int_equal(e2e_wait_svms_up(e, 1, 2000), 0);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), status), 0);
	assert_non_null(strstr(out, "reload refused"));
	/* The last-good copy still holds the good file. */
	snprintf(lg, sizeof(lg), "%s.last-good", e->conf);
	assert_non_null(f = fopen(lg, "r"));
	assert_non_null(fgets(out, sizeof(out), f));
	fclose(f);
	assert_non_null(strstr(out, "[mux]"));
}

/* muxctl svm add / remove, checked like an [svm] section. */
static void
test_muxctl_svm_add_remove(void **state)
{
	struct e2e *e = *state;
	int p = e2e_free_port();
	const char *sb[] = { "--service-id", "fw", NULL };
	char addr[64], out[8192];
	const char *add[] = { "svm", "add", "b", addr, "service_id=fw", "tls=off", NULL };
	const char *add_tls[] = { "svm", "add", "c", addr, "service_id=fw", NULL };
	const char *add_bad[] = { "svm", "add", "d", "nowhere", "service_id=x",
	    "tls=off", NULL };
	const char *rm[] = { "svm", "remove", "b", NULL };
	const char *svms[] = { "--json", "svms", NULL };

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p);
	e2e_conf(e, NULL);
	e2e_start_svm(e, "svm-b", p, sb);
	e2e_start_muxd(e);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), add), 0);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), add), 1);
	assert_non_null(strstr(out, "exists already"));
	/* TLS is the default, and this muxd has no [tls]: refused, said why. */
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), add_tls), 1);
	assert_non_null(strstr(out, "[tls]"));
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), add_bad), 1);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), rm), 0);
	usleep(600 * 1000);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), svms), 0);
	assert_int_equal(count(out, "\"name\":"), 0);
	assert_int_equal(e2e_muxctl(e, out, sizeof(out), rm), 1);
	assert_non_null(strstr(out, "no [svm b]"));
}

/* SIGHUP reloads; new per-VM limits take effect on the running daemon. */
static void
test_sighup_applies_limits(void **state)
{
	struct e2e *e = *state;
	const char *lg[] = { "--agents", "2", "--rate", "2000", "--duration", "2",
	    NULL };
	char json[8192];

	e2e_conf(e, NULL);
	e2e_start_muxd(e);
	assert_int_equal(e2e_run_loadgen(e, "lg1", lg), 0);
	assert_int_equal(e2e_metric(e, "mux_events_dropped_total{reason=\"rate\"}"), 0);
	e2e_conf(e, "[limits]\nagent_max_events_per_sec = 200\n");
	kill(e->muxd, SIGHUP);
	usleep(500 * 1000);
	assert_int_equal(e2e_run_loadgen(e, "lg2", lg), 0);
	assert_int_equal(e2e_last_json(e2e_path(e, "lg2.out"), json, sizeof(json)), 0);
	/* 1000 events/s per VM against 200: most are shed now. */
	assert_true(e2e_metric(e, "mux_events_dropped_total{reason=\"rate\"}") > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reload_adds_and_removes_svms,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_reload_bad_file_keeps_running,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_muxctl_svm_add_remove,
		    e2e_setup, e2e_teardown),
		cmocka_unit_test_setup_teardown(test_sighup_applies_limits,
		    e2e_setup, e2e_teardown),
	};

	return cmocka_run_group_tests_name("e2e_reload", tests, NULL, NULL);
}
