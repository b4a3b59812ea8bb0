/*
 * verdict.c: pending verdicts and their aggregation. See verdict.h.
 */
#include <stdlib.h>
#include <string.h>

#include "verdict.h"

#define HASH_MIN	1024u
#define REASON_MAX	128	/* an SVM's reason is cut to this */

struct pending {
	TAILQ_ENTRY(pending) order;	/* deadline order, table-wide */
	TAILQ_ENTRY(pending) by_owner;
	struct pending	*hnext;
	struct verdict_owner *owner;
	uint64_t	 seq;
	uint64_t	 event_id;
	uint64_t	 ingest_ns;
	uint64_t	 deadline;
	uint64_t	 need;
	uint32_t	 allowed;
	int		 last_allow;	/* slot */
	char		 allow_reason[REASON_MAX];
};

struct verdict_table {
	struct pending_list order;
	struct pending	**hash;
	size_t		 nbuckets;	/* power of two */
	size_t		 count;
	uint64_t	 timeout_ns;
	int		 default_action;
	verdict_emit_fn	 emit;
	void		*arg;
};

static size_t
bucket(const struct verdict_table *t, uint64_t seq)
{
	return (size_t)((seq * 0x9e3779b97f4a7c15ull) >> 17) & (t->nbuckets - 1);
}

struct verdict_table *
verdict_table_new(uint64_t timeout_ns, int default_action, verdict_emit_fn emit,
    void *arg)
{
	struct verdict_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->nbuckets = HASH_MIN;
	if ((t->hash = calloc(t->nbuckets, sizeof(*t->hash))) == NULL) {
		free(t);
		return NULL;
	}
	TAILQ_INIT(&t->order);
	t->timeout_ns = timeout_ns;
	t->default_action = default_action;
	t->emit = emit;
	t->arg = arg;
	return t;
}

static void
unlink_pending(struct verdict_table *t, struct pending *p)
{
	struct pending **pp = &t->hash[bucket(t, p->seq)];

	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	TAILQ_REMOVE(&t->order, p, order);
	TAILQ_REMOVE(&p->owner->list, p, by_owner);
	p->owner->count--;
	if (p->owner->shared != NULL)
		(*p->owner->shared)--;
	t->count--;
}

void
verdict_table_free(struct verdict_table *t)
{
	struct pending *p;

	if (t == NULL)
		return;
	while ((p = TAILQ_FIRST(&t->order)) != NULL) {
		unlink_pending(t, p);
		free(p);
	}
	free(t->hash);
	free(t);
}

void
verdict_owner_init(struct verdict_owner *o, uint32_t *shared)
{
	TAILQ_INIT(&o->list);
	o->count = 0;
	o->shared = shared;
}

/* Doubles the buckets when the chains grow long; never shrinks. */
static void
grow(struct verdict_table *t)
{
	struct pending **nh, *p, *next;
	size_t i, n = t->nbuckets * 2;

	if ((nh = calloc(n, sizeof(*nh))) == NULL)
		return;		/* longer chains, still correct */
	for (i = 0; i < t->nbuckets; i++)
		for (p = t->hash[i]; p != NULL; p = next) {
			size_t b;

			next = p->hnext;
			b = (size_t)((p->seq * 0x9e3779b97f4a7c15ull) >> 17) & (n - 1);
			p->hnext = nh[b];
			nh[b] = p;
		}
	free(t->hash);
	t->hash = nh;
	t->nbuckets = n;
}

int
verdict_add(struct verdict_table *t, uint64_t seq, uint64_t event_id,
    struct verdict_owner *owner, uint64_t need, uint64_t ingest_ns,
    uint64_t now_mono)
{
	struct pending *p;
	size_t b;

	if (need == 0 || (p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	if (t->count >= t->nbuckets * 2)
		grow(t);
	p->seq = seq;
	p->event_id = event_id;
	p->owner = owner;
	p->need = need;
	p->ingest_ns = ingest_ns;
	p->deadline = now_mono + t->timeout_ns;
	p->last_allow = -1;
	b = bucket(t, seq);
	p->hnext = t->hash[b];
	t->hash[b] = p;
	TAILQ_INSERT_TAIL(&t->order, p, order);
	TAILQ_INSERT_TAIL(&owner->list, p, by_owner);
	owner->count++;
	if (owner->shared != NULL)
		(*owner->shared)++;
	t->count++;
	return 0;
}

static struct pending *
find(const struct verdict_table *t, uint64_t seq)
{
	struct pending *p;

	for (p = t->hash[bucket(t, seq)]; p != NULL; p = p->hnext)
		if (p->seq == seq)
			return p;
	return NULL;
}

/*
 * Out of the table first, then emitted: the emit callback may close the
 * connection, which drops that owner's other pendings from the table.
 */
static void
decide(struct verdict_table *t, struct pending *p, int action, int slot,
    const char *reason, int timed_out)
{
	unlink_pending(t, p);
	t->emit(t->arg, p->owner, p->event_id, action, slot, reason, timed_out,
	    p->ingest_ns);
	free(p);
}

enum verdict_outcome
verdict_answer(struct verdict_table *t, uint64_t seq, int slot, int action,
    const char *reason)
{
	struct pending *p;
	uint64_t bit;

	if (slot < 0 || slot >= VERDICT_SLOTS || (p = find(t, seq)) == NULL)
		return VERDICT_IGNORED;
	bit = 1ull << slot;
	if ((p->need & bit) == 0)
		return VERDICT_IGNORED;		/* not a decider, or answered */
	if (action == 2) {			/* DENY wins at once */
		decide(t, p, action, slot, reason, 0);
		return VERDICT_DECIDED;
	}
	p->need &= ~bit;
	p->allowed++;
	p->last_allow = slot;
	strncpy(p->allow_reason, reason != NULL ? reason : "", REASON_MAX - 1);
	if (p->need == 0) {
		decide(t, p, action, slot, p->allow_reason, 0);
		return VERDICT_DECIDED;
	}
	return VERDICT_COUNTED;
}

/* A decider is gone: it no longer counts for anything still pending. */
size_t
verdict_lose_slot(struct verdict_table *t, int slot)
{
	struct pending *p, *next;
	struct pending_list done;
	uint64_t bit;
	size_t n = 0;

	if (slot < 0 || slot >= VERDICT_SLOTS)
		return 0;
	bit = 1ull << slot;
	/* Two passes: nothing is emitted while the table is being walked. */
	TAILQ_INIT(&done);
	for (p = TAILQ_FIRST(&t->order); p != NULL; p = next) {
		next = TAILQ_NEXT(p, order);
		if ((p->need & bit) == 0)
			continue;
		p->need &= ~bit;
		if (p->need != 0)
			continue;
		unlink_pending(t, p);
		TAILQ_INSERT_TAIL(&done, p, order);
	}
	while ((p = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, p, order);
		if (p->allowed > 0)
			t->emit(t->arg, p->owner, p->event_id, 1, p->last_allow,
			    p->allow_reason, 0, p->ingest_ns);
		else
			t->emit(t->arg, p->owner, p->event_id, t->default_action,
			    -1, "decider-lost", 0, p->ingest_ns);
		free(p);
		n++;
	}
	return n;
}

void
verdict_drop_owner(struct verdict_table *t, struct verdict_owner *o)
{
	struct pending *p;

	while ((p = TAILQ_FIRST(&o->list)) != NULL) {
		unlink_pending(t, p);
		free(p);
	}
}

size_t
verdict_expire(struct verdict_table *t, uint64_t now_mono)
{
	struct pending *p;
	size_t n = 0;

	/* Never earlier than the deadline. */
	while ((p = TAILQ_FIRST(&t->order)) != NULL && p->deadline <= now_mono) {
		decide(t, p, t->default_action, -1, "timeout", 1);
		n++;
	}
	return n;
}

uint64_t
verdict_next_deadline(const struct verdict_table *t)
{
	const struct pending *p = TAILQ_FIRST(&t->order);

	return p != NULL ? p->deadline : 0;
}

size_t
verdict_count(const struct verdict_table *t)
{
	return t->count;
}
