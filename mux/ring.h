/*
 * ring.h: the retention ring between ingest and fan-out.
 *
 * One producer (the ingest thread) appends records; any number of readers
 * (SVM cursors on the fan-out thread, or test threads) read them by seq.
 * The producer NEVER waits for a reader: retention is bounded by bytes and
 * by events, and the oldest records are evicted to make room. A reader that
 * asks for an evicted seq gets RING_OVERRUN and decides (Gap or disconnect).
 *
 *   free-running byte offsets (uint64, never wrap in practice):
 *
 *        tail_off                               head_off
 *           |<------------- retained ------------->|
 *   arena:  [ rec s=t ][ rec t+1 ] ... [ rec h-1 ]  (free)
 *           physical index = off & (bytes - 1); a record never straddles
 *           the end of the arena: the producer skips to the next lap.
 *
 *   slot index: off_of[seq & (events - 1)] = offset of record seq.
 *
 * Invariants (checked by ring_valid):
 *   tail_seq <= head_seq,  head_seq - tail_seq <= events,
 *   head_off - tail_off <= bytes,  every retained record's header has its seq.
 *
 * Capacity rule: bytes and events are powers of two; a record takes
 * RING_HDR_LEN + len rounded up to 8 bytes; the largest record must fit
 * four times (ring_init refuses otherwise).
 *
 * Memory orders. Readers never write shared state. The producer is a
 * seqlock writer whose "sequence" is tail_seq:
 *   producer: store tail_seq (relaxed) ; fence(release) ; write record words
 *             (relaxed atomics) ; store head_seq (release)
 *   reader:   load head_seq (acquire) ; load tail_seq ; read record words
 *             (relaxed atomics) ; fence(acquire) ; reload tail_seq
 * If a reader saw any word of an overwriting record, the fences make it see
 * the tail that evicted its seq on the reload, so it reports RING_OVERRUN
 * instead of torn data. Records are copied with relaxed 64-bit atomic loads
 * so this is a race-free C11 program (ThreadSanitizer-clean).
 *
 * Threads: ring_push_sp only from the one producer thread; ring_*_mc from any
 * thread; ring_valid/ring_dump only while the producer is quiescent.
 */
#ifndef MUX_RING_H
#define MUX_RING_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#define RING_HDR_LEN	24	/* seq, len+cid, class+flags: 3 words */
#define RING_F_REPLY	0x01	/* event has reply_expected */

/* What readers can learn about a record without copying its body. */
struct ring_meta {
	uint64_t	seq;
	uint32_t	len;		/* body bytes */
	uint32_t	cid;		/* VM the event belongs to */
	uint8_t		cls;		/* EventClass */
	uint8_t		flags;		/* RING_F_* */
	uint16_t	vm_slot;	/* free for the producer's use */
	uint32_t	aux;		/* free for the producer's use */
};

enum ring_read {
	RING_OK = 0,
	RING_EMPTY,		/* seq not written yet */
	RING_OVERRUN,		/* seq evicted (or evicted while reading) */
};

struct ring {
	/* read-mostly, set by ring_init */
	_Atomic uint64_t *arena;	/* bytes / 8 words */
	_Atomic uint64_t *off_of;	/* events slots */
	uint64_t	 bytes;
	uint64_t	 events;
	uint32_t	 max_len;	/* largest body accepted */

	/* shared: written by the producer, read by readers */
	_Alignas(64) _Atomic uint64_t head_seq;	/* next seq to assign */
	_Alignas(64) _Atomic uint64_t tail_seq;	/* oldest retained seq */

	/* producer only */
	_Alignas(64) uint64_t head_off;
	uint64_t	 tail_off;
	/* producer-written figures, read relaxed by the control thread */
	_Atomic uint64_t evicted;	/* records evicted, ever */
	_Atomic uint64_t used_bytes;	/* head_off - tail_off */
};

/* ring.c */
int	 ring_init(struct ring *, uint64_t bytes, uint64_t events, uint32_t max_len,
	    uint64_t first_seq);
void	 ring_free(struct ring *);
uint64_t ring_round_pow2(uint64_t);
uint64_t ring_record_size(uint32_t len);
/* Producer: append; returns the seq assigned. len <= max_len. */
uint64_t ring_push_sp(struct ring *, const struct ring_meta *, const void *body,
	    uint32_t len);
/* Readers. */
uint64_t ring_head_mc(const struct ring *);
uint64_t ring_tail_mc(const struct ring *);
enum ring_read ring_meta_mc(const struct ring *, uint64_t seq, struct ring_meta *);
/* Copies the body into buf (size >= max_len). */
enum ring_read ring_read_mc(const struct ring *, uint64_t seq, struct ring_meta *,
	    void *buf);
/* Producer-side figures (producer thread, or relaxed snapshots elsewhere). */
int	 ring_valid(const struct ring *, char *why, size_t whylen);
void	 ring_dump(const struct ring *, FILE *);

#endif
