/*
 * batch.c: DeliveryBatch frames built in wire form. Deliveries are copied
 * from the ring as already-encoded Delivery messages; this file only adds
 * the field tags and lengths around them (see fanout.h for the layout).
 */
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

/* Field tags: MuxToSvm.batch = 4, DeliveryBatch.deliveries = 1 (mux.proto). */
#define TAG_MUX_TO_SVM_BATCH	((4u << 3) | 2u)
#define TAG_DELIVERIES		((1u << 3) | 2u)
#define ITEM_HDR_MAX		(1 + 5)		/* tag + varint32 */

int
batch_init(struct batch *b, size_t max_bytes, size_t max_item)
{
	memset(b, 0, sizeof(*b));
	/* A batch may pass max_bytes by at most one item. */
	b->cap = BATCH_RESERVE + max_bytes + ITEM_HDR_MAX + max_item;
	if ((b->buf = malloc(b->cap)) == NULL)
		return -1;
	return 0;
}

void
batch_free(struct batch *b)
{
	free(b->buf);
	b->buf = NULL;
}

void
batch_reset(struct batch *b)
{
	b->len = 0;
	b->count = 0;
	b->urgent = 0;
}

int
batch_fits(const struct batch *b, uint32_t len, uint32_t max_events,
    size_t max_bytes)
{
	if (b->count == 0)
		return 1;	/* one item always fits, whatever its size */
	return b->count < max_events && b->len + ITEM_HDR_MAX + len <= max_bytes;
}

uint8_t *
batch_item_begin(struct batch *b, uint32_t len)
{
	uint8_t *p = b->buf + BATCH_RESERVE + b->len;
	size_t n;

	b->item_start = b->len;
	p[0] = TAG_DELIVERIES;
	n = 1 + wire_put_varint(p + 1, len);
	b->len += n;
	return p + n;
}

void
batch_item_commit(struct batch *b, uint32_t len)
{
	b->len += len;
	b->count++;
}

void
batch_item_abort(struct batch *b)
{
	b->len = b->item_start;
}

/* Writes the frame header in front of the items; returns the frame. */
const uint8_t *
batch_finish(struct batch *b, size_t *framelen)
{
	uint8_t hdr[BATCH_RESERVE], *start;
	size_t h = FRAME_HDR_LEN, body;

	hdr[h++] = TAG_MUX_TO_SVM_BATCH;
	h += wire_put_varint(hdr + h, b->len);
	body = h - FRAME_HDR_LEN + b->len;
	frame_put_header(hdr, (uint32_t)body);
	start = b->buf + BATCH_RESERVE - h;
	memcpy(start, hdr, h);
	*framelen = h + b->len;
	return start;
}
