/*
 * test_mbox.c: wake-ups and mailboxes between threads (mbox.c).
 *
 * The loop under test runs in the test's own thread; the other side is a
 * real pthread. Nothing sleeps to synchronise: the loop stops itself when
 * its callback has seen what it waits for, threads are joined, and a guard
 * timer only turns a hang into a failure.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "mux.h"

#define GUARD_SEC	5	/* only reached when a wake-up is lost */
#define PINGPONG_ROUNDS	1000
#define STORM_SIGNALS	200000
#define LOCAL_SIGNALS	1000
#define MBOX_MSGS	10000
#define MBOX_PRODUCERS	2

/* ---- a loop with a guard timer ---- */

struct loop {
	struct event_base *base;
	struct event	*guard;
	struct event	*start;		/* starts the other thread from the loop */
	int		 timed_out;
	pthread_t	 th;
	void		*(*thread_fn)(void *);
	void		*thread_arg;
	void		(*cancel)(void *);	/* on timeout: release the thread */
	int		 started;
};

static void
guard_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct loop *l = arg;

	(void)fd;
	(void)ev;
	l->timed_out = 1;
	if (l->cancel != NULL)
		l->cancel(l->thread_arg);
	event_base_loopbreak(l->base);
}

/* The other thread starts once the loop runs, so it signals a live loop. */
static void
start_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct loop *l = arg;

	(void)fd;
	(void)ev;
	if (l->thread_fn != NULL) {
		assert_int_equal(pthread_create(&l->th, NULL, l->thread_fn,
		    l->thread_arg), 0);
		l->started = 1;
	}
}

static void
loop_init(struct loop *l)
{
	struct timeval guard = { GUARD_SEC, 0 };

	memset(l, 0, sizeof(*l));
	l->base = event_base_new();
	assert_non_null(l->base);
	l->guard = evtimer_new(l->base, guard_cb, l);
	assert_non_null(l->guard);
	assert_int_equal(evtimer_add(l->guard, &guard), 0);
	l->start = evtimer_new(l->base, start_cb, l);
	assert_non_null(l->start);
}

/* Run until a callback breaks the loop; fn (if any) runs in a new thread. */
static void
loop_run(struct loop *l, void *(*fn)(void *), void *arg)
{
	struct timeval now = { 0, 0 };

	l->thread_fn = fn;
	l->thread_arg = arg;
	l->started = 0;
	assert_int_equal(evtimer_add(l->start, &now), 0);
	assert_int_equal(event_base_dispatch(l->base), 0);
	if (l->started)
		assert_int_equal(pthread_join(l->th, NULL), 0);
	assert_false(l->timed_out);
}

static void
loop_free(struct loop *l)
{
	event_free(l->start);
	event_free(l->guard);
	event_base_free(l->base);
}

/* ---- wake ---- */

struct wake_ctx {
	struct loop	*loop;
	struct wake	 w;
	atomic_ullong	 value;		/* set by the signaller before signalling */
	unsigned long long target;	/* stop when value reaches it */
	unsigned long long calls;
	unsigned long long seen;	/* value at the last callback */
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	unsigned long long ack;		/* under lock: last value seen */
	int		 cancelled;	/* under lock: the guard fired */
};

static void
wake_ctx_init(struct wake_ctx *c, struct loop *l, unsigned long long target)
{
	memset(c, 0, sizeof(*c));
	c->loop = l;
	c->target = target;
	atomic_init(&c->value, 0);
	assert_int_equal(pthread_mutex_init(&c->lock, NULL), 0);
	assert_int_equal(pthread_cond_init(&c->cond, NULL), 0);
}

static void
wake_ctx_free(struct wake_ctx *c)
{
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
}

static void
on_wake(void *arg)
{
	struct wake_ctx *c = arg;
	unsigned long long v = atomic_load(&c->value);

	c->calls++;
	/* A callback never sees the value go backwards. */
	assert_true(v >= c->seen);
	c->seen = v;
	pthread_mutex_lock(&c->lock);
	c->ack = v;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (v == c->target)
		event_base_loopbreak(c->loop->base);
}

/* Signal once, then wait for the loop to have seen it; repeat. */
static void *
pingpong_thread(void *arg)
{
	struct wake_ctx *c = arg;
	unsigned long long i;

	for (i = 1; i <= c->target; i++) {
		atomic_store(&c->value, i);
		wake_signal(&c->w);
		pthread_mutex_lock(&c->lock);
		while (c->ack < i && !c->cancelled)
			pthread_cond_wait(&c->cond, &c->lock);
		pthread_mutex_unlock(&c->lock);
		if (c->cancelled)
			break;
	}
	return NULL;
}

/* The guard fired: a wake-up was lost; let the waiting thread go. */
static void
pingpong_cancel(void *arg)
{
	struct wake_ctx *c = arg;

	pthread_mutex_lock(&c->lock);
	c->cancelled = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void
test_wake_cross_thread(void **state)
{
	struct loop l;
	struct wake_ctx c;

	(void)state;
	loop_init(&l);
	wake_ctx_init(&c, &l, 1);
	assert_int_equal(wake_init(&c.w, l.base, on_wake, &c), 0);
	l.cancel = pingpong_cancel;
	loop_run(&l, pingpong_thread, &c);
	assert_int_equal(c.seen, 1);
	assert_int_equal(c.calls, 1);
	wake_free(&c.w);
	wake_ctx_free(&c);
	loop_free(&l);
}

/*
 * Every signal made after the previous callback re-armed must bring a new
 * callback: the thread waits for each one before the next signal.
 */
static void
test_wake_rearms(void **state)
{
	struct loop l;
	struct wake_ctx c;

	(void)state;
	loop_init(&l);
	wake_ctx_init(&c, &l, PINGPONG_ROUNDS);
	assert_int_equal(wake_init(&c.w, l.base, on_wake, &c), 0);
	l.cancel = pingpong_cancel;
	loop_run(&l, pingpong_thread, &c);
	assert_int_equal(c.seen, PINGPONG_ROUNDS);
	assert_int_equal(c.calls, PINGPONG_ROUNDS);
	wake_free(&c.w);
	wake_ctx_free(&c);
	loop_free(&l);
}

static int
pipe_bytes(const struct wake *w)
{
	int n = -1;

	assert_int_equal(ioctl(w->fds[0], FIONREAD, &n), 0);
	return n;
}

/* Signals from the loop's own thread, before the loop runs: one callback. */
static void
test_wake_coalesce_local(void **state)
{
	struct loop l;
	struct wake_ctx c;
	int i;

	(void)state;
	loop_init(&l);
	wake_ctx_init(&c, &l, 0);	/* never breaks by itself */
	assert_int_equal(wake_init(&c.w, l.base, on_wake, &c), 0);
	assert_int_equal(atomic_load(&c.w.armed), 1);

	/* Nothing signalled: a non-blocking pass runs no callback. */
	assert_int_equal(event_base_loop(l.base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(c.calls, 0);

	for (i = 0; i < LOCAL_SIGNALS; i++)
		wake_signal(&c.w);
	assert_int_equal(atomic_load(&c.w.armed), 0);
	/* Only the first signal found it armed: one byte, one system call. */
	assert_int_equal(pipe_bytes(&c.w), 1);
	assert_int_equal(event_base_loop(l.base, EVLOOP_ONCE), 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(atomic_load(&c.w.armed), 1);	/* re-armed */
	assert_int_equal(pipe_bytes(&c.w), 0);		/* drained */
	assert_int_equal(event_base_loop(l.base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(c.calls, 1);

	/* And again: the wake is reusable. */
	for (i = 0; i < LOCAL_SIGNALS; i++)
		wake_signal(&c.w);
	assert_int_equal(event_base_loop(l.base, EVLOOP_ONCE), 0);
	assert_int_equal(event_base_loop(l.base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(c.calls, 2);

	wake_free(&c.w);
	assert_null(c.w.ev);
	wake_ctx_free(&c);
	loop_free(&l);
}

/* Signal as fast as possible, never waiting for the loop. */
static void *
storm_thread(void *arg)
{
	struct wake_ctx *c = arg;
	unsigned long long i;

	for (i = 1; i <= c->target; i++) {
		atomic_store(&c->value, i);
		wake_signal(&c->w);
	}
	return NULL;
}

static void
test_wake_coalesce_threads(void **state)
{
	struct loop l;
	struct wake_ctx c;

	(void)state;
	loop_init(&l);
	wake_ctx_init(&c, &l, STORM_SIGNALS);
	assert_int_equal(wake_init(&c.w, l.base, on_wake, &c), 0);
	/*
	 * The loop stops only in a callback that saw the last value, i.e. one
	 * that ran after the last signal: a lost wake-up hangs to the guard.
	 */
	loop_run(&l, storm_thread, &c);
	print_message("%d signals, %llu callbacks\n", STORM_SIGNALS, c.calls);
	assert_int_equal(c.seen, STORM_SIGNALS);
	assert_true(c.calls >= 1);
	assert_true(c.calls <= STORM_SIGNALS / 4);
	wake_free(&c.w);
	wake_ctx_free(&c);
	loop_free(&l);
}

/* ---- mbox ---- */

struct mbox_ctx {
	struct loop	*loop;
	struct mbox	 mb;
	uint32_t	 next[MBOX_PRODUCERS];	/* per producer */
	uint32_t	 per_producer;
	uint32_t	 total;
	uint32_t	 got;
	unsigned	 calls;
	unsigned	 bad;
};

struct producer {
	struct mbox_ctx	*c;
	uint32_t	 id;
};

static size_t
msg_datalen(uint32_t i)
{
	return i % 17;
}

static void *
producer_thread(void *arg)
{
	struct producer *p = arg;
	uint32_t i;

	for (i = 0; i < p->c->per_producer; i++) {
		size_t n = msg_datalen(i);
		struct mbox_msg *m;

		m = mbox_msg_new(i % 2 ? MBOX_VM_STATUS : MBOX_SOLUTIONS, n);
		m->cid = p->id << 24 | i;
		m->state = (int)(i * 7);
		memset(m->data, (int)(i & 0xff), n);
		mbox_post(&p->c->mb, m);
	}
	return NULL;
}

/* Several producers: the first runs in the loop's helper thread. */
static void *
producers_thread(void *arg)
{
	struct mbox_ctx *c = arg;
	struct producer p[MBOX_PRODUCERS];
	pthread_t th[MBOX_PRODUCERS];
	uint32_t n = c->total / c->per_producer, i;

	for (i = 0; i < n; i++) {
		p[i].c = c;
		p[i].id = i;
	}
	for (i = 1; i < n; i++)
		if (pthread_create(&th[i], NULL, producer_thread, &p[i]) != 0)
			abort();
	producer_thread(&p[0]);
	for (i = 1; i < n; i++)
		pthread_join(th[i], NULL);
	return NULL;
}

static void
on_mbox(void *arg)
{
	struct mbox_ctx *c = arg;
	struct mbox_list list;
	struct mbox_msg *m;

	c->calls++;
	mbox_take(&c->mb, &list);
	while ((m = TAILQ_FIRST(&list)) != NULL) {
		uint32_t id = m->cid >> 24, i = m->cid & 0xffffff;
		size_t k;

		TAILQ_REMOVE(&list, m, entry);
		/* In order per producer, nothing lost, nothing twice. */
		if (id >= MBOX_PRODUCERS || i != c->next[id] ||
		    m->type != (i % 2 ? MBOX_VM_STATUS : MBOX_SOLUTIONS) ||
		    m->state != (int)(i * 7) || m->len != msg_datalen(i))
			c->bad++;
		for (k = 0; k < m->len; k++)
			if (m->data[k] != (uint8_t)(i & 0xff))
				c->bad++;
		if (id < MBOX_PRODUCERS)
			c->next[id] = i + 1;
		c->got++;
		free(m);
	}
	if (c->got >= c->total || c->bad != 0)
		event_base_loopbreak(c->loop->base);
}

static void
run_mbox(uint32_t producers)
{
	struct loop l;
	struct mbox_ctx c;
	uint32_t i;

	loop_init(&l);
	memset(&c, 0, sizeof(c));
	c.loop = &l;
	c.per_producer = MBOX_MSGS / producers;
	c.total = c.per_producer * producers;
	assert_int_equal(mbox_init(&c.mb, l.base, on_mbox, &c), 0);
	loop_run(&l, producers_thread, &c);
	print_message("%u producer(s): %u messages in %u callbacks\n",
	    producers, c.got, c.calls);
	assert_int_equal(c.bad, 0);
	assert_int_equal(c.got, c.total);
	for (i = 0; i < producers; i++)
		assert_int_equal(c.next[i], c.per_producer);
	assert_true(c.calls >= 1 && c.calls <= c.total);
	assert_true(TAILQ_EMPTY(&c.mb.list));
	mbox_free(&c.mb);
	loop_free(&l);
}

static void
test_mbox_order_one_producer(void **state)
{
	(void)state;
	run_mbox(1);
}

static void
test_mbox_order_two_producers(void **state)
{
	(void)state;
	run_mbox(MBOX_PRODUCERS);
}

/* Messages still queued are freed with the mailbox (ASan: no leak). */
static void
test_mbox_free_pending(void **state)
{
	struct loop l;
	struct mbox_ctx c;
	struct mbox_list list;
	struct mbox_msg *m;
	int i;

	(void)state;
	loop_init(&l);
	memset(&c, 0, sizeof(c));
	c.loop = &l;
	assert_int_equal(mbox_init(&c.mb, l.base, on_mbox, &c), 0);

	/* Take on an empty mailbox gives an empty list. */
	mbox_take(&c.mb, &list);
	assert_true(TAILQ_EMPTY(&list));

	for (i = 0; i < 3; i++) {
		m = mbox_msg_new(MBOX_VM_MAP, 100);
		assert_int_equal(m->type, MBOX_VM_MAP);
		assert_int_equal(m->len, 100);
		/* The header is cleared; the data is the sender's to fill. */
		assert_int_equal(m->cid, 0);
		assert_int_equal(m->state, 0);
		assert_int_equal(m->vm_uuid[0], 0);
		assert_int_equal(m->vm_name[0], 0);
		memset(m->data, 0xab, m->len);
		mbox_post(&c.mb, m);
	}
	assert_false(TAILQ_EMPTY(&c.mb.list));
	mbox_free(&c.mb);
	loop_free(&l);
}

static int
setup_threads(void **state)
{
	(void)state;
	return evthread_use_pthreads();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wake_cross_thread),
		cmocka_unit_test(test_wake_rearms),
		cmocka_unit_test(test_wake_coalesce_local),
		cmocka_unit_test(test_wake_coalesce_threads),
		cmocka_unit_test(test_mbox_order_one_producer),
		cmocka_unit_test(test_mbox_order_two_producers),
		cmocka_unit_test(test_mbox_free_pending),
	};

	return cmocka_run_group_tests_name("mbox", tests, setup_threads, NULL);
}
