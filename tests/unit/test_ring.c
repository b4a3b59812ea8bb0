/*
 * test_ring.c: the retention ring, alone and under real threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"

#define MAXLEN	256

static void
fill(unsigned char *buf, uint64_t seq, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(seq * 31 + i * 7);
}

static int
check(const unsigned char *buf, uint64_t seq, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		if (buf[i] != (unsigned char)(seq * 31 + i * 7))
			return 0;
	return 1;
}

static uint32_t
len_of(uint64_t seq)
{
	return (uint32_t)((seq * 13) % MAXLEN);
}

static uint64_t
push(struct ring *r, uint64_t expect)
{
	unsigned char buf[MAXLEN];
	struct ring_meta m = { .cid = (uint32_t)expect + 3, .cls = 2,
	    .flags = RING_F_REPLY, .aux = 77 };
	uint32_t len = len_of(expect);

	fill(buf, expect, len);
	return ring_push_sp(r, &m, buf, len);
}

static void
assert_valid(const struct ring *r)
{
	char why[256] = "";

	if (!ring_valid(r, why, sizeof(why)))
		fail_msg("ring_valid: %s", why);
}

static void
test_init_rules(void **state)
{
	struct ring r;

	(void)state;
	/* The largest record must fit four times. */
	assert_int_equal(ring_init(&r, 1024, 16, 1024, 1), -1);
	assert_int_equal(ring_init(&r, 1000, 10, 64, 1), 0);
	assert_int_equal(r.bytes, 1024);	/* rounded up to powers of two */
	assert_int_equal(r.events, 16);
	ring_free(&r);
}

static void
test_empty(void **state)
{
	unsigned char buf[MAXLEN];
	struct ring_meta m;
	struct ring r;

	(void)state;
	assert_int_equal(ring_init(&r, 4096, 16, MAXLEN, 1), 0);
	assert_int_equal(ring_head_mc(&r), 1);
	assert_int_equal(ring_tail_mc(&r), 1);
	assert_int_equal(ring_read_mc(&r, 1, &m, buf), RING_EMPTY);
	assert_int_equal(ring_meta_mc(&r, 1, &m), RING_EMPTY);
	assert_int_equal(ring_read_mc(&r, 0, &m, buf), RING_OVERRUN);
	assert_valid(&r);
	ring_free(&r);
}

static void
test_roundtrip(void **state)
{
	unsigned char buf[MAXLEN];
	struct ring_meta m;
	struct ring r;
	uint64_t s;

	(void)state;
	assert_int_equal(ring_init(&r, 1 << 16, 256, MAXLEN, 1), 0);
	for (s = 1; s <= 100; s++)
		assert_int_equal(push(&r, s), s);
	for (s = 1; s <= 100; s++) {
		memset(buf, 0xee, sizeof(buf));
		assert_int_equal(ring_read_mc(&r, s, &m, buf), RING_OK);
		assert_int_equal(m.seq, s);
		assert_int_equal(m.len, len_of(s));
		assert_int_equal(m.cid, (uint32_t)s + 3);
		assert_int_equal(m.cls, 2);
		assert_int_equal(m.flags, RING_F_REPLY);
		assert_int_equal(m.aux, 77);
		assert_true(check(buf, s, m.len));
	}
	assert_int_equal(ring_read_mc(&r, 101, &m, buf), RING_EMPTY);
	assert_valid(&r);
	ring_free(&r);
}

/* Full by events: the oldest are evicted, the newest `events` stay. */
static void
test_full_events(void **state)
{
	unsigned char buf[MAXLEN];
	struct ring_meta m;
	struct ring r;
	uint64_t s;

	(void)state;
	assert_int_equal(ring_init(&r, 1 << 16, 8, MAXLEN, 1), 0);
	for (s = 1; s <= 20; s++) {
		push(&r, s);
		assert_valid(&r);
	}
	assert_int_equal(ring_tail_mc(&r), 13);
	assert_int_equal(ring_head_mc(&r), 21);
	assert_int_equal(ring_read_mc(&r, 12, &m, buf), RING_OVERRUN);
	for (s = 13; s <= 20; s++) {
		assert_int_equal(ring_read_mc(&r, s, &m, buf), RING_OK);
		assert_true(check(buf, s, m.len));
	}
	assert_int_equal(atomic_load(&r.evicted), 12);
	ring_free(&r);
}

/* Full by bytes: retention never exceeds the arena. */
static void
test_full_bytes(void **state)
{
	unsigned char buf[MAXLEN], big[MAXLEN];
	struct ring_meta m = { .cls = 1 };
	struct ring r;
	uint64_t s, kept;

	(void)state;
	assert_int_equal(ring_init(&r, 2048, 1024, MAXLEN, 1), 0);
	for (s = 1; s <= 500; s++) {
		fill(big, s, 200);
		assert_int_equal(ring_push_sp(&r, &m, big, 200), s);
		assert_true(atomic_load(&r.used_bytes) <= r.bytes);
		assert_valid(&r);
	}
	kept = ring_head_mc(&r) - ring_tail_mc(&r);
	/* 224-byte records, 2048-byte arena, laps skip the tail end. */
	assert_true(kept >= 7 && kept <= 9);
	for (s = ring_tail_mc(&r); s < ring_head_mc(&r); s++) {
		assert_int_equal(ring_read_mc(&r, s, &m, buf), RING_OK);
		assert_true(check(buf, s, 200));
	}
	ring_free(&r);
}

/* Free-running indices wrap: seqs and byte offsets cross 2^64. */
static void
test_wraparound(void **state)
{
	unsigned char buf[MAXLEN];
	struct ring_meta m;
	struct ring r;
	uint64_t first = UINT64_MAX - 20, s, n;

	(void)state;
	assert_int_equal(ring_init(&r, 4096, 16, MAXLEN, first), 0);
	/* Producer-private offsets start just below the wrap too. */
	r.head_off = r.tail_off = UINT64_MAX - 3000;
	for (n = 0, s = first; n < 200; n++, s++) {
		assert_int_equal(push(&r, s), s);
		assert_valid(&r);
	}
	assert_true(r.head_off < 100000);	/* the offsets wrapped */
	assert_true(ring_head_mc(&r) < 200);	/* so did the seqs */
	for (s = ring_tail_mc(&r); s != ring_head_mc(&r); s++) {
		assert_int_equal(ring_read_mc(&r, s, &m, buf), RING_OK);
		assert_int_equal(m.seq, s);
		assert_true(check(buf, s, m.len));
	}
	assert_int_equal(ring_read_mc(&r, ring_tail_mc(&r) - 1, &m, buf),
	    RING_OVERRUN);
	assert_int_equal(ring_read_mc(&r, ring_head_mc(&r), &m, buf), RING_EMPTY);
	ring_free(&r);
}

/* ---- one producer, several cursors, real threads ---- */

#if defined(__SANITIZE_THREAD__)
#define THREAD_RECORDS	200000u
#else
#define THREAD_RECORDS	2000000u
#endif
#define THREAD_READERS	3

struct reader {
	struct ring	*r;
	int		 slow;
	uint64_t	 ok, overrun, corrupt, order;
	_Atomic int	*done;
};

static void *
reader_main(void *arg)
{
	struct reader *rd = arg;
	unsigned char buf[MAXLEN];
	struct ring_meta m;
	uint64_t cur = 1, last = 0, end = THREAD_RECORDS + 1;

	while (cur != end) {
		switch (ring_read_mc(rd->r, cur, &m, buf)) {
		case RING_OK:
			if (!check(buf, cur, m.len) || m.len != len_of(cur) ||
			    m.cid != (uint32_t)cur + 3)
				rd->corrupt++;
			if (cur <= last)
				rd->order++;
			last = cur++;
			rd->ok++;
			if (rd->slow && (cur % 1024) == 0)
				usleep(200);
			break;
		case RING_OVERRUN:
			rd->overrun++;
			cur = ring_tail_mc(rd->r);
			break;
		case RING_EMPTY:
			sched_yield();
			break;
		}
	}
	return NULL;
}

static void
test_threads(void **state)
{
	struct reader rd[THREAD_READERS];
	pthread_t th[THREAD_READERS];
	_Atomic int done = 0;
	struct ring r;
	uint64_t s;
	int i;

	(void)state;
	/* Small ring so that the slow reader is overrun many times. */
	assert_int_equal(ring_init(&r, 1 << 16, 1024, MAXLEN, 1), 0);
	for (i = 0; i < THREAD_READERS; i++) {
		memset(&rd[i], 0, sizeof(rd[i]));
		rd[i].r = &r;
		rd[i].slow = (i == THREAD_READERS - 1);
		rd[i].done = &done;
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	}
	for (s = 1; s <= THREAD_RECORDS; s++) {
		push(&r, s);
		if ((s & 4095) == 0)
			sched_yield();
	}
	for (i = 0; i < THREAD_READERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (i = 0; i < THREAD_READERS; i++) {
		print_message("reader %d: ok=%llu overrun=%llu\n", i,
		    (unsigned long long)rd[i].ok, (unsigned long long)rd[i].overrun);
		assert_int_equal(rd[i].corrupt, 0);
		assert_int_equal(rd[i].order, 0);
		assert_true(rd[i].ok > 0);
	}
	assert_true(rd[THREAD_READERS - 1].overrun > 0);
	assert_valid(&r);
	ring_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rules),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_full_events),
		cmocka_unit_test(test_full_bytes),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
