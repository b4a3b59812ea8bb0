/*
 * frame.c: length-prefixed protobuf frames and the budgeted decode arena.
 */
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* First chunk is kept across frames; larger ones are freed on reset. */
#define ARENA_FIRST_CHUNK	(64u * 1024u)
#define ARENA_ALIGN		16u

struct frame_arena_chunk {
	struct frame_arena_chunk *next;
	size_t			 size;
	size_t			 off;
	_Alignas(16) unsigned char data[];	/* ARENA_ALIGN-aligned */
};

enum frame_status
frame_scan(const uint8_t *buf, size_t len, uint32_t max_frame, uint32_t *body_len)
{
	uint32_t n;

	if (len < FRAME_HDR_LEN)
		return FRAME_NEED_MORE;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
	if (n == 0)
		return FRAME_ERR_EMPTY;
	if (n > max_frame)
		return FRAME_ERR_TOO_BIG;
	*body_len = n;
	if (len - FRAME_HDR_LEN < n)
		return FRAME_NEED_MORE;
	return FRAME_OK;
}

void
frame_put_header(uint8_t out[FRAME_HDR_LEN], uint32_t n)
{
	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
}

size_t
frame_budget(uint32_t body_len)
{
	return (size_t)body_len * FRAME_BUDGET_FACTOR + FRAME_BUDGET_SLACK;
}

const char *
frame_status_reason(enum frame_status st)
{
	switch (st) {
	case FRAME_ERR_EMPTY:
		return "empty_frame";
	case FRAME_ERR_TOO_BIG:
		return "frame_too_big";
	default:
		return "ok";
	}
}

const char *
frame_decode_reason(enum frame_decode_result r)
{
	switch (r) {
	case FRAME_DECODE_BAD:
		return "decode";
	case FRAME_DECODE_BUDGET:
		return "alloc_budget";
	default:
		return "ok";
	}
}

static struct frame_arena_chunk *
arena_chunk_new(size_t size)
{
	struct frame_arena_chunk *c;

	c = malloc(sizeof(*c) + size);
	if (c == NULL)
		return NULL;
	c->next = NULL;
	c->size = size;
	c->off = 0;
	return c;
}

static void *
arena_alloc(void *data, size_t size)
{
	struct frame_arena *a = data;
	struct frame_arena_chunk *c = a->chunks;
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	void *p;

	if (need < size || a->used + need > a->budget) {
		a->over = 1;
		return NULL;
	}
	if (c == NULL || c->size - c->off < need) {
		size_t sz = need > ARENA_FIRST_CHUNK ? need : ARENA_FIRST_CHUNK;

		if (c != NULL && c->size * 2 > sz && c->size * 2 <= a->budget)
			sz = c->size * 2;
		/* Never reserve more than the budget has left. */
		if (sz > a->budget - a->used)
			sz = need > a->budget - a->used ? need : a->budget - a->used;
		c = arena_chunk_new(sz);
		if (c == NULL) {
			a->over = 1;
			return NULL;
		}
		c->next = a->chunks;
		a->chunks = c;
	}
	p = c->data + c->off;
	c->off += need;
	a->used += need;
	return p;
}

static void
arena_free(void *data, void *p)
{
	(void)data;
	(void)p;		/* freed wholesale by frame_arena_reset */
}

void
frame_arena_init(struct frame_arena *a)
{
	memset(a, 0, sizeof(*a));
	a->allocator.alloc = arena_alloc;
	a->allocator.free = arena_free;
	a->allocator.allocator_data = a;
}

void
frame_arena_reset(struct frame_arena *a)
{
	struct frame_arena_chunk *c, *next;

	/* Keep the oldest (first, smallest) chunk; free the rest. */
	for (c = a->chunks; c != NULL && c->next != NULL; c = next) {
		next = c->next;
		free(c);
		a->chunks = next;
	}
	if (a->chunks != NULL)
		a->chunks->off = 0;
	a->used = 0;
	a->over = 0;
}

void
frame_arena_destroy(struct frame_arena *a)
{
	struct frame_arena_chunk *c, *next;

	for (c = a->chunks; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	a->chunks = NULL;
}

ProtobufCMessage *
frame_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *body,
    uint32_t body_len, struct frame_arena *a, enum frame_decode_result *res)
{
	ProtobufCMessage *m;

	frame_arena_reset(a);
	a->budget = frame_budget(body_len);
	m = protobuf_c_message_unpack(desc, &a->allocator, body_len, body);
	if (m == NULL)
		*res = a->over ? FRAME_DECODE_BUDGET : FRAME_DECODE_BAD;
	else
		*res = FRAME_DECODE_OK;
	return m;
}

size_t
frame_pack(const ProtobufCMessage *m, uint8_t *buf)
{
	size_t n = protobuf_c_message_pack(m, buf + FRAME_HDR_LEN);

	frame_put_header(buf, (uint32_t)n);
	return n + FRAME_HDR_LEN;
}
