/*
 * ring.c: single-producer, multi-reader retention ring. See ring.h for the
 * diagram, the invariants and the memory orders.
 */
#include <stdlib.h>
#include <string.h>

#include "ring.h"

#define RING_ALIGN	8u
/* Free-running indices are compared by difference, never directly. */
#define RING_BEFORE(a, b)	((int64_t)((a) - (b)) < 0)
#define RING_AFTER_EQ(a, b)	((int64_t)((a) - (b)) >= 0)

uint64_t
ring_round_pow2(uint64_t v)
{
	uint64_t p = 1;

	while (p < v && p < (UINT64_C(1) << 62))
		p <<= 1;
	return p;
}

uint64_t
ring_record_size(uint32_t len)
{
	return (RING_HDR_LEN + (uint64_t)len + RING_ALIGN - 1) & ~(uint64_t)(RING_ALIGN - 1);
}

int
ring_init(struct ring *r, uint64_t bytes, uint64_t events, uint32_t max_len,
    uint64_t first_seq)
{
	memset(r, 0, sizeof(*r));
	bytes = ring_round_pow2(bytes);
	events = ring_round_pow2(events);
	if (events < 2 || bytes < 4 * ring_record_size(max_len))
		return -1;
	r->arena = calloc(bytes / 8, sizeof(*r->arena));
	r->off_of = calloc(events, sizeof(*r->off_of));
	if (r->arena == NULL || r->off_of == NULL) {
		ring_free(r);
		return -1;
	}
	r->bytes = bytes;
	r->events = events;
	r->max_len = max_len;
	atomic_init(&r->head_seq, first_seq);
	atomic_init(&r->tail_seq, first_seq);
	return 0;
}

void
ring_free(struct ring *r)
{
	free(r->arena);
	free(r->off_of);
	r->arena = NULL;
	r->off_of = NULL;
}

static inline _Atomic uint64_t *
ring_word(const struct ring *r, uint64_t off)
{
	return &r->arena[(off & (r->bytes - 1)) / 8];
}

/* Producer only: header word 0 of a retained record (no race: own writes). */
static uint64_t
ring_own_load(_Atomic uint64_t *w)
{
	return atomic_load_explicit(w, memory_order_relaxed);
}

static void
ring_evict_one(struct ring *r, uint64_t *tail)
{
	(*tail)++;
	atomic_fetch_add_explicit(&r->evicted, 1, memory_order_relaxed);
	if (*tail == atomic_load_explicit(&r->head_seq, memory_order_relaxed))
		r->tail_off = r->head_off;
	else
		r->tail_off = ring_own_load(&r->off_of[*tail & (r->events - 1)]);
}

uint64_t
ring_push_sp(struct ring *r, const struct ring_meta *m, const void *body,
    uint32_t len)
{
	uint64_t seq = atomic_load_explicit(&r->head_seq, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->tail_seq, memory_order_relaxed);
	uint64_t need = ring_record_size(len), start = r->head_off, pos, i, w;
	uint64_t words[RING_HDR_LEN / 8];
	const unsigned char *p = body;
	int moved = 0;

	/* A record never straddles the end of the arena. */
	pos = start & (r->bytes - 1);
	if (pos + need > r->bytes)
		start += r->bytes - pos;
	/* Evict until the new record fits in bytes and in slots. */
	while (tail != seq && (start + need - r->tail_off > r->bytes ||
	    seq - tail >= r->events)) {
		ring_evict_one(r, &tail);
		moved = 1;
	}
	if (tail == seq)
		r->tail_off = start;
	if (moved) {
		atomic_store_explicit(&r->tail_seq, tail, memory_order_relaxed);
		/* Orders the tail store before the overwrite below (seqlock). */
		atomic_thread_fence(memory_order_release);
	}

	words[0] = seq;
	words[1] = (uint64_t)len | (uint64_t)m->cid << 32;
	words[2] = (uint64_t)m->cls | (uint64_t)m->flags << 8 |
	    (uint64_t)m->vm_slot << 16 | (uint64_t)m->aux << 32;
	for (i = 0; i < RING_HDR_LEN / 8; i++)
		atomic_store_explicit(ring_word(r, start + 8 * i), words[i],
		    memory_order_relaxed);
	for (i = 0; i < len; i += 8) {
		w = 0;
		memcpy(&w, p + i, len - i >= 8 ? 8 : len - i);
		atomic_store_explicit(ring_word(r, start + RING_HDR_LEN + i), w,
		    memory_order_relaxed);
	}
	atomic_store_explicit(&r->off_of[seq & (r->events - 1)], start,
	    memory_order_relaxed);
	r->head_off = start + need;
	atomic_store_explicit(&r->used_bytes, r->head_off - r->tail_off,
	    memory_order_relaxed);
	/* Publishes the record (and off_of) to readers that acquire head. */
	atomic_store_explicit(&r->head_seq, seq + 1, memory_order_release);
	return seq;
}

uint64_t
ring_head_mc(const struct ring *r)
{
	return atomic_load_explicit(&r->head_seq, memory_order_acquire);
}

uint64_t
ring_tail_mc(const struct ring *r)
{
	return atomic_load_explicit(&r->tail_seq, memory_order_acquire);
}

/* Reads the header of seq; *off gets the record's offset. */
static enum ring_read
ring_read_hdr(const struct ring *r, uint64_t seq, struct ring_meta *m,
    uint64_t *off)
{
	uint64_t w0, w1, w2;

	if (RING_AFTER_EQ(seq, atomic_load_explicit(&r->head_seq,
	    memory_order_acquire)))
		return RING_EMPTY;
	if (RING_BEFORE(seq, atomic_load_explicit(&r->tail_seq,
	    memory_order_acquire)))
		return RING_OVERRUN;
	*off = atomic_load_explicit(&r->off_of[seq & (r->events - 1)],
	    memory_order_relaxed);
	w0 = atomic_load_explicit(ring_word(r, *off), memory_order_relaxed);
	w1 = atomic_load_explicit(ring_word(r, *off + 8), memory_order_relaxed);
	w2 = atomic_load_explicit(ring_word(r, *off + 16), memory_order_relaxed);
	m->seq = w0;
	m->len = (uint32_t)w1;
	m->cid = (uint32_t)(w1 >> 32);
	m->cls = (uint8_t)w2;
	m->flags = (uint8_t)(w2 >> 8);
	m->vm_slot = (uint16_t)(w2 >> 16);
	m->aux = (uint32_t)(w2 >> 32);
	return RING_OK;
}

/* The seqlock check: was seq evicted while we read it? */
static enum ring_read
ring_validate(const struct ring *r, uint64_t seq, const struct ring_meta *m)
{
	atomic_thread_fence(memory_order_acquire);
	if (RING_BEFORE(seq, atomic_load_explicit(&r->tail_seq,
	    memory_order_relaxed)))
		return RING_OVERRUN;
	if (m->seq != seq || m->len > r->max_len)
		return RING_OVERRUN;	/* cannot happen when the invariants hold */
	return RING_OK;
}

enum ring_read
ring_meta_mc(const struct ring *r, uint64_t seq, struct ring_meta *m)
{
	enum ring_read st;
	uint64_t off;

	if ((st = ring_read_hdr(r, seq, m, &off)) != RING_OK)
		return st;
	return ring_validate(r, seq, m);
}

enum ring_read
ring_read_mc(const struct ring *r, uint64_t seq, struct ring_meta *m, void *buf)
{
	unsigned char *out = buf;
	enum ring_read st;
	uint64_t off, i, w;
	uint32_t len;

	if ((st = ring_read_hdr(r, seq, m, &off)) != RING_OK)
		return st;
	/* A torn length is caught by ring_validate; never copy past max_len. */
	len = m->len > r->max_len ? r->max_len : m->len;
	for (i = 0; i < len; i += 8) {
		w = atomic_load_explicit(ring_word(r, off + RING_HDR_LEN + i),
		    memory_order_relaxed);
		memcpy(out + i, &w, len - i >= 8 ? 8 : len - i);
	}
	return ring_validate(r, seq, m);
}

int
ring_valid(const struct ring *r, char *why, size_t whylen)
{
	uint64_t head = atomic_load(&r->head_seq), tail = atomic_load(&r->tail_seq);
	uint64_t s, off, prev_end = 0;	/* relative to tail_off */
	struct ring_meta m;

#define RING_BAD(...) do { snprintf(why, whylen, __VA_ARGS__); return 0; } while (0)
	if (RING_BEFORE(head, tail))
		RING_BAD("tail %llu > head %llu", (unsigned long long)tail,
		    (unsigned long long)head);
	if (head - tail > r->events)
		RING_BAD("%llu records > %llu slots",
		    (unsigned long long)(head - tail), (unsigned long long)r->events);
	if (r->head_off - r->tail_off > r->bytes)
		RING_BAD("%llu bytes retained > %llu",
		    (unsigned long long)(r->head_off - r->tail_off),
		    (unsigned long long)r->bytes);
	for (s = tail; s != head; s++) {
		if (ring_read_hdr(r, s, &m, &off) != RING_OK || m.seq != s)
			RING_BAD("record %llu has header seq %llu",
			    (unsigned long long)s, (unsigned long long)m.seq);
		off -= r->tail_off;
		if (off < prev_end || off + ring_record_size(m.len) >
		    r->head_off - r->tail_off)
			RING_BAD("record %llu at %llu outside the retained range",
			    (unsigned long long)s, (unsigned long long)off);
		if (((off + r->tail_off) & (r->bytes - 1)) +
		    ring_record_size(m.len) > r->bytes)
			RING_BAD("record %llu straddles the end",
			    (unsigned long long)s);
		prev_end = off + ring_record_size(m.len);
	}
#undef RING_BAD
	return 1;
}

void
ring_dump(const struct ring *r, FILE *f)
{
	fprintf(f, "ring: bytes=%llu events=%llu head_seq=%llu tail_seq=%llu "
	    "head_off=%llu tail_off=%llu used=%llu evicted=%llu\n",
	    (unsigned long long)r->bytes, (unsigned long long)r->events,
	    (unsigned long long)atomic_load(&r->head_seq),
	    (unsigned long long)atomic_load(&r->tail_seq),
	    (unsigned long long)r->head_off, (unsigned long long)r->tail_off,
	    (unsigned long long)atomic_load(&r->used_bytes),
	    (unsigned long long)atomic_load(&r->evicted));
}
