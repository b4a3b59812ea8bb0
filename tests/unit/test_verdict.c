/*
 * test_verdict.c: verdict aggregation (protocol section 6) and the timeout
 * queue, with a fake clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "verdict.h"

#define ALLOW	1
#define DENY	2
#define MS	1000000ull

struct emitted {
	struct verdict_owner *owner;
	uint64_t	event_id;
	int		action;
	int		slot;
	char		reason[64];
	int		timed_out;
};

static struct emitted out[256];
static size_t nout;

static void
emit(void *arg, struct verdict_owner *o, uint64_t event_id, int action, int slot,
    const char *reason, int timed_out, uint64_t ingest_ns)
{
	(void)arg;
	(void)ingest_ns;
	struct emitted *e = &out[nout % 256];	/* the big test only counts */

	e->owner = o;
	e->event_id = event_id;
	e->action = action;
	e->slot = slot;
	memset(e->reason, 0, sizeof(e->reason));
	strncpy(e->reason, reason, sizeof(e->reason) - 1);
	e->timed_out = timed_out;
	nout++;
}

static struct verdict_table *
table(int default_action)
{
	nout = 0;
	memset(out, 0, sizeof(out));
	return verdict_table_new(3000 * MS, default_action, emit, NULL);
}

static void
test_single_decider_allow(void **state)
{
	struct verdict_table *t = table(ALLOW);
	struct verdict_owner o;
	uint32_t vm = 0;

	(void)state;
	verdict_owner_init(&o, &vm);
	assert_int_equal(verdict_add(t, 10, 100, &o, 1ull << 3, 0, 0), 0);
	assert_int_equal(vm, 1);
	assert_int_equal(o.count, 1);
	assert_int_equal(verdict_answer(t, 10, 3, ALLOW, "clean"), VERDICT_DECIDED);
	assert_int_equal(nout, 1);
	assert_int_equal(out[0].event_id, 100);
	assert_int_equal(out[0].action, ALLOW);
	assert_int_equal(out[0].slot, 3);
	assert_string_equal(out[0].reason, "clean");
	assert_int_equal(vm, 0);
	/* Exactly once: a second answer is ignored. */
	assert_int_equal(verdict_answer(t, 10, 3, DENY, "late"), VERDICT_IGNORED);
	assert_int_equal(nout, 1);
	verdict_table_free(t);
}

static void
test_deny_wins_at_once(void **state)
{
	struct verdict_table *t = table(ALLOW);
	struct verdict_owner o;

	(void)state;
	verdict_owner_init(&o, NULL);
	verdict_add(t, 5, 50, &o, (1ull << 0) | (1ull << 1) | (1ull << 2), 0, 0);
	assert_int_equal(verdict_answer(t, 5, 0, ALLOW, "ok0"), VERDICT_COUNTED);
	assert_int_equal(nout, 0);
	assert_int_equal(verdict_answer(t, 5, 2, DENY, "malware"), VERDICT_DECIDED);
	assert_int_equal(nout, 1);
	assert_int_equal(out[0].action, DENY);
	assert_int_equal(out[0].slot, 2);
	assert_string_equal(out[0].reason, "malware");
	/* The third decider's answer comes too late and changes nothing. */
	assert_int_equal(verdict_answer(t, 5, 1, ALLOW, "ok1"), VERDICT_IGNORED);
	assert_int_equal(verdict_count(t), 0);
	verdict_table_free(t);
}

static void
test_all_allow_last_allower_named(void **state)
{
	struct verdict_table *t = table(DENY);
	struct verdict_owner o;

	(void)state;
	verdict_owner_init(&o, NULL);
	verdict_add(t, 7, 70, &o, (1ull << 4) | (1ull << 9), 0, 0);
	assert_int_equal(verdict_answer(t, 7, 9, ALLOW, "r9"), VERDICT_COUNTED);
	assert_int_equal(verdict_answer(t, 7, 4, ALLOW, "r4"), VERDICT_DECIDED);
	assert_int_equal(out[0].action, ALLOW);
	assert_int_equal(out[0].slot, 4);
	assert_string_equal(out[0].reason, "r4");
	verdict_table_free(t);
}

static void
test_not_a_decider_ignored(void **state)
{
	struct verdict_table *t = table(ALLOW);
	struct verdict_owner o;

	(void)state;
	verdict_owner_init(&o, NULL);
	verdict_add(t, 1, 11, &o, 1ull << 1, 0, 0);
	assert_int_equal(verdict_answer(t, 1, 2, DENY, "x"), VERDICT_IGNORED);
	assert_int_equal(verdict_answer(t, 99, 1, DENY, "x"), VERDICT_IGNORED);
	assert_int_equal(verdict_answer(t, 1, -1, DENY, "x"), VERDICT_IGNORED);
	assert_int_equal(verdict_answer(t, 1, 64, DENY, "x"), VERDICT_IGNORED);
	assert_int_equal(nout, 0);
	assert_int_equal(verdict_add(t, 2, 12, &o, 0, 0, 0), -1);	/* no decider */
	verdict_table_free(t);
}

/* Never earlier than the timeout; the default with timed_out. */
static void
test_timeout_never_early(void **state)
{
	struct verdict_table *t = table(ALLOW);
	struct verdict_owner o;

	(void)state;
	verdict_owner_init(&o, NULL);
	verdict_add(t, 1, 1, &o, 1, 0, 1000 * MS);
	verdict_add(t, 2, 2, &o, 1, 0, 1500 * MS);
	assert_int_equal(verdict_next_deadline(t), 4000 * MS);
	assert_int_equal(verdict_expire(t, 4000 * MS - 1), 0);
	assert_int_equal(nout, 0);
	assert_int_equal(verdict_expire(t, 4000 * MS), 1);
	assert_int_equal(out[0].event_id, 1);
	assert_int_equal(out[0].slot, -1);
	assert_int_equal(out[0].timed_out, 1);
	assert_int_equal(out[0].action, ALLOW);
	assert_string_equal(out[0].reason, "timeout");
	assert_int_equal(verdict_next_deadline(t), 4500 * MS);
	assert_int_equal(verdict_expire(t, 10000 * MS), 1);
	assert_int_equal(verdict_next_deadline(t), 0);
	verdict_table_free(t);
}

static void
test_fail_closed_default(void **state)
{
	struct verdict_table *t = table(DENY);
	struct verdict_owner o;

	(void)state;
	verdict_owner_init(&o, NULL);
	verdict_add(t, 1, 1, &o, 1, 0, 0);
	verdict_expire(t, 3000 * MS);
	assert_int_equal(out[0].action, DENY);
	assert_int_equal(out[0].timed_out, 1);
	verdict_table_free(t);
}

static void
test_decider_lost(void **state)
{
	struct verdict_table *t = table(ALLOW);
	struct verdict_owner o;

	(void)state;
	verdict_owner_init(&o, NULL);
	/* seq 1: only slot 0 -> decider-lost at once when 0 goes. */
	verdict_add(t, 1, 1, &o, 1ull << 0, 0, 0);
	/* seq 2: slots 0 and 1 -> still waits for 1. */
	verdict_add(t, 2, 2, &o, 3, 0, 0);
	/* seq 3: slot 0 allowed before the loss, slot 1 then lost: ALLOW. */
	verdict_add(t, 3, 3, &o, 3, 0, 0);
	assert_int_equal(verdict_answer(t, 3, 0, ALLOW, "seen"), VERDICT_COUNTED);

	assert_int_equal(verdict_lose_slot(t, 0), 1);
	assert_int_equal(nout, 1);
	assert_int_equal(out[0].event_id, 1);
	assert_string_equal(out[0].reason, "decider-lost");
	assert_int_equal(out[0].timed_out, 0);
	assert_int_equal(out[0].slot, -1);
	/* Its late answer no longer counts. */
	assert_int_equal(verdict_answer(t, 2, 0, DENY, "late"), VERDICT_IGNORED);

	assert_int_equal(verdict_lose_slot(t, 1), 2);
	assert_int_equal(nout, 3);
	assert_int_equal(out[1].event_id, 2);
	assert_string_equal(out[1].reason, "decider-lost");
	assert_int_equal(out[2].event_id, 3);
	assert_int_equal(out[2].action, ALLOW);
	assert_int_equal(out[2].slot, 0);
	assert_string_equal(out[2].reason, "seen");
	assert_int_equal(verdict_count(t), 0);
	verdict_table_free(t);
}

/* A closed connection takes its pendings: no verdict, never to another. */
static void
test_owner_closed(void **state)
{
	struct verdict_table *t = table(ALLOW);
	struct verdict_owner a, b;
	uint32_t vm = 0;

	(void)state;
	verdict_owner_init(&a, &vm);
	verdict_owner_init(&b, &vm);
	verdict_add(t, 1, 1, &a, 1, 0, 0);
	verdict_add(t, 2, 1, &b, 1, 0, 0);	/* same event id, other connection */
	verdict_add(t, 3, 2, &a, 1, 0, 0);
	assert_int_equal(vm, 3);
	verdict_drop_owner(t, &a);
	assert_int_equal(vm, 1);
	assert_int_equal(a.count, 0);
	assert_int_equal(verdict_answer(t, 1, 0, DENY, "x"), VERDICT_IGNORED);
	assert_int_equal(verdict_answer(t, 2, 0, DENY, "y"), VERDICT_DECIDED);
	assert_int_equal(nout, 1);
	assert_ptr_equal(out[0].owner, &b);
	assert_int_equal(verdict_expire(t, UINT64_MAX), 0);
	verdict_table_free(t);
}

/* 100,000 pending verdicts: hash growth, lookups and expiry stay cheap. */
static void
test_hundred_thousand(void **state)
{
	struct verdict_table *t;
	struct verdict_owner o;
	uint32_t vm = 0;
	uint64_t s, n = 100000;
	clock_t c0;
	double secs;

	(void)state;
	nout = 0;
	t = verdict_table_new(3000 * MS, ALLOW, emit, NULL);
	verdict_owner_init(&o, &vm);
	c0 = clock();
	for (s = 1; s <= n; s++)
		assert_int_equal(verdict_add(t, s, s, &o, 1, 0, s), 0);
	assert_int_equal(verdict_count(t), n);
	/* Answer every other one, out of order. */
	for (s = n; s >= 1; s -= 2)
		assert_int_equal(verdict_answer(t, s, 0, ALLOW, ""), VERDICT_DECIDED);
	nout = 0;
	assert_int_equal(verdict_count(t), n / 2);
	/* Expire in deadline order; one call sweeps them all. */
	{
		uint64_t left = 0;
		struct verdict_table *tt = t;

		for (s = 1; s <= n; s += 2)
			left += verdict_expire(tt, 3000 * MS + s);
		assert_int_equal(left, n / 2);
	}
	secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
	print_message("100k add + 50k answers + 50k expiries: %.3f s CPU\n", secs);
	assert_true(secs < 2.0);	/* linear; quadratic would take minutes */
	assert_int_equal(vm, 0);
	verdict_table_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_decider_allow),
		cmocka_unit_test(test_deny_wins_at_once),
		cmocka_unit_test(test_all_allow_last_allower_named),
		cmocka_unit_test(test_not_a_decider_ignored),
		cmocka_unit_test(test_timeout_never_early),
		cmocka_unit_test(test_fail_closed_default),
		cmocka_unit_test(test_decider_lost),
		cmocka_unit_test(test_owner_closed),
		cmocka_unit_test(test_hundred_thousand),
	};

	return cmocka_run_group_tests_name("verdict", tests, NULL, NULL);
}
