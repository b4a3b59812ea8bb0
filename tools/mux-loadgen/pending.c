/*
 * pending.c: the events of one connection that still await a verdict.
 *
 * Event ids only grow within a connection, so the entries are pushed in
 * ascending order and a verdict finds its entry by binary search. Verdicts
 * may come out of order (one SVM is slower than another): an answered entry
 * is only marked and stays until everything older is answered too, then the
 * tail moves past it. So the ring holds at most the span from the oldest
 * unanswered event to the newest, and it is capped at LG_PENDING_MAX.
 *
 *   tail                              head
 *    |  answered  live  answered live  |  free ...
 *    v                                 v
 *   [ 5 ]  [ 9 ]  [ 12 ]  [ 13 ]  [ 20 ]
 */
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static struct pending_ent *
pending_at(const struct pending *p, uint32_t i)
{
	return &p->v[i & (p->cap - 1)];
}

/* Double the ring, keeping the order; -1 at the cap or without memory. */
static int
pending_grow(struct pending *p)
{
	struct pending_ent *nv;
	uint32_t ncap, n = p->head - p->tail, i;

	ncap = p->cap == 0 ? LG_PENDING_MIN : p->cap * 2;
	if (ncap > LG_PENDING_MAX)
		return -1;
	if ((nv = calloc(ncap, sizeof(*nv))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		nv[i] = *pending_at(p, p->tail + i);
	free(p->v);
	p->v = nv;
	p->cap = ncap;
	p->tail = 0;
	p->head = n;
	return 0;
}

int
pending_push(struct pending *p, const struct pending_ent *ent)
{
	if (p->head - p->tail == p->cap && pending_grow(p) == -1)
		return -1;
	*pending_at(p, p->head++) = *ent;
	p->live++;
	return 0;
}

/* How many more entries fit, growth included. */
uint32_t
pending_room(const struct pending *p)
{
	return LG_PENDING_MAX - (p->head - p->tail);
}

/*
 * Answer event_id: 0 and a copy of its entry, -1 when it is not pending
 * (never sent with reply_expected, or already answered).
 */
int
pending_take(struct pending *p, uint64_t event_id, struct pending_ent *out)
{
	struct pending_ent *e;
	uint32_t lo = 0, hi = p->head - p->tail, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		e = pending_at(p, p->tail + mid);
		if (e->event_id == event_id) {
			if (e->sent_ns == PENDING_ANSWERED)
				return -1;
			*out = *e;
			e->sent_ns = PENDING_ANSWERED;
			p->live--;
			/* Drop the answered prefix so the ring does not fill. */
			while (p->tail != p->head &&
			    pending_at(p, p->tail)->sent_ns == PENDING_ANSWERED)
				p->tail++;
			return 0;
		}
		if (e->event_id < event_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/*
 * Forget everything (the connection closed, or the run ended); fn, when
 * not NULL, sees each unanswered entry first. Returns how many there were.
 */
uint32_t
pending_clear(struct pending *p, void (*fn)(const struct pending_ent *,
    void *), void *arg)
{
	uint32_t live = p->live, i;
	const struct pending_ent *e;

	for (i = p->tail; fn != NULL && i != p->head; i++) {
		e = pending_at(p, i);
		if (e->sent_ns != PENDING_ANSWERED)
			fn(e, arg);
	}

	p->head = p->tail = 0;
	p->live = 0;
	return live;
}

void
pending_free(struct pending *p)
{
	free(p->v);
	memset(p, 0, sizeof(*p));
}
