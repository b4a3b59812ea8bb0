/*
 * test_batch.c: DeliveryBatch frames built in wire form (batch.c). Real
 * Delivery messages are encoded with protobuf-c, copied in the way svm.c
 * copies them from the ring, and the finished frame is decoded back with
 * frame_scan + mux__mux_to_svm__unpack.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fanout.h"

#define MAX_BYTES	(256u * 1024u)	/* batch_max_bytes for most tests */
#define MAX_ITEM	(64u * 1024u)	/* largest record */
#define NITEMS		50
#define BIG_ITEM	(2u * 1024u * 1024u + 64u)	/* for 3/4-byte varints */

/* One Delivery and everything it points to. */
struct dl {
	Mux__Delivery	 d;
	Mux__VmRef	 vm;
	Mux__Event	 ev;
	Mux__FileEvent	 fe;
	char		*path;
	char		 uuid[40];
	uint8_t		*packed;
	size_t		 len;
};

static void
fill_path(char *p, size_t len, uint64_t seq)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (char)('a' + (seq + i) % 26);
	p[len] = '\0';
}

/* Build (not pack) a Delivery for seq with a path of pathlen bytes. */
static void
dl_build(struct dl *x, uint64_t seq, size_t pathlen)
{
	Mux__Delivery d = MUX__DELIVERY__INIT;
	Mux__VmRef vm = MUX__VM_REF__INIT;
	Mux__Event ev = MUX__EVENT__INIT;
	Mux__FileEvent fe = MUX__FILE_EVENT__INIT;

	memset(x, 0, sizeof(*x));
	x->path = malloc(pathlen + 1);
	assert_non_null(x->path);
	fill_path(x->path, pathlen, seq);
	snprintf(x->uuid, sizeof(x->uuid), "uuid-%llu", (unsigned long long)seq % 7);
	x->vm = vm;
	x->vm.cid = (uint32_t)(3 + seq % 7);
	x->vm.vm_uuid = x->uuid;
	x->fe = fe;
	x->fe.op = MUX__FILE_EVENT__OP__OPEN;
	x->fe.path = x->path;
	x->fe.file_id = seq * 3;
	x->ev = ev;
	x->ev.event_id = seq + 1000;
	x->ev.time_ns = seq * 1000;
	x->ev.reply_expected = (seq % 5) == 0;
	x->ev.body_case = MUX__EVENT__BODY_FILE;
	x->ev.file = &x->fe;
	x->d = d;
	x->d.seq = seq;
	x->d.vm = &x->vm;
	x->d.agent_session = 77;
	x->d.event = &x->ev;
	x->d.ingest_time_ns = seq * 1000 + 1;
}

static void
dl_pack(struct dl *x)
{
	x->len = mux__delivery__get_packed_size(&x->d);
	x->packed = malloc(x->len);
	assert_non_null(x->packed);
	assert_int_equal(mux__delivery__pack(&x->d, x->packed), x->len);
}

static void
dl_make(struct dl *x, uint64_t seq, size_t pathlen)
{
	dl_build(x, seq, pathlen);
	dl_pack(x);
}

/*
 * A Delivery whose encoding is exactly `target` bytes: the path length is
 * the coarse knob, the size of the seq varint (1..10 bytes) the fine one.
 */
static void
dl_make_exact(struct dl *x, size_t target, uint64_t *seqp)
{
	size_t k, lo;
	int sb;

	for (sb = 1; sb <= 10; sb++) {
		uint64_t seq = sb == 1 ? 1 : (uint64_t)1 << (7 * (sb - 1));

		lo = target > 64 ? target - 64 : 0;
		for (k = lo; k <= target; k++) {
			size_t n;

			dl_build(x, seq, k);
			n = mux__delivery__get_packed_size(&x->d);
			if (n == target) {
				dl_pack(x);
				*seqp = seq;
				return;
			}
			free(x->path);
			if (n > target)
				break;
		}
	}
	fail_msg("no Delivery of exactly %zu bytes", target);
}

static void
dl_free(struct dl *x)
{
	free(x->path);
	free(x->packed);
	x->path = NULL;
	x->packed = NULL;
}

/* Copy one encoded Delivery in, the way svm_pump does from the ring. */
static void
add(struct batch *b, const struct dl *x)
{
	uint8_t *p;

	p = batch_item_begin(b, (uint32_t)x->len);
	assert_non_null(p);
	assert_true(p + x->len <= b->buf + b->cap);
	memcpy(p, x->packed, x->len);
	batch_item_commit(b, (uint32_t)x->len);
}

/* Finish b and decode the frame; the caller frees with free_unpacked. */
static Mux__MuxToSvm *
finish_decode(struct batch *b)
{
	const uint8_t *frame;
	size_t framelen;
	uint32_t body_len = 0;
	Mux__MuxToSvm *m;

	frame = batch_finish(b, &framelen);
	assert_non_null(frame);
	assert_true(frame >= b->buf);
	assert_true(frame + framelen <= b->buf + b->cap);
	assert_int_equal(frame_scan(frame, framelen, FRAME_SVM_MAX_DEFAULT,
	    &body_len), FRAME_OK);
	assert_int_equal(FRAME_HDR_LEN + body_len, framelen);
	/* The items end exactly where the reserve says they do. */
	assert_ptr_equal(frame + framelen, b->buf + BATCH_RESERVE + b->len);
	m = mux__mux_to_svm__unpack(NULL, body_len, frame + FRAME_HDR_LEN);
	assert_non_null(m);
	assert_int_equal(m->msg_case, MUX__MUX_TO_SVM__MSG_BATCH);
	assert_non_null(m->batch);
	assert_int_equal(m->batch->n_deliveries, b->count);
	return m;
}

static void
check_delivery(const Mux__Delivery *d, uint64_t seq, size_t pathlen)
{
	char uuid[40];
	char *want;

	want = malloc(pathlen + 1);
	assert_non_null(want);
	fill_path(want, pathlen, seq);
	snprintf(uuid, sizeof(uuid), "uuid-%llu", (unsigned long long)seq % 7);
	assert_int_equal(d->seq, seq);
	assert_int_equal(d->agent_session, 77);
	assert_int_equal(d->ingest_time_ns, seq * 1000 + 1);
	assert_non_null(d->vm);
	assert_int_equal(d->vm->cid, 3 + seq % 7);
	assert_string_equal(d->vm->vm_uuid, uuid);
	assert_string_equal(d->vm->vm_name, "");
	assert_non_null(d->event);
	assert_int_equal(d->event->event_id, seq + 1000);
	assert_int_equal(d->event->time_ns, seq * 1000);
	assert_int_equal(d->event->reply_expected, (seq % 5) == 0);
	assert_int_equal(d->event->body_case, MUX__EVENT__BODY_FILE);
	assert_int_equal(d->event->file->op, MUX__FILE_EVENT__OP__OPEN);
	assert_int_equal(d->event->file->file_id, seq * 3);
	assert_int_equal(strlen(d->event->file->path), pathlen);
	assert_string_equal(d->event->file->path, want);
	free(want);
}

static size_t
varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* ---- tests ---- */

static void
test_varint(void **state)
{
	static const struct {
		uint64_t	 v;
		size_t		 n;
	} cases[] = {
		{ 0, 1 }, { 1, 1 }, { 127, 1 }, { 128, 2 }, { 300, 2 },
		{ 16383, 2 }, { 16384, 3 }, { 2097151, 3 }, { 2097152, 4 },
		{ 268435455, 4 }, { 268435456, 5 }, { UINT32_MAX, 5 },
		{ (uint64_t)1 << 63, 10 }, { UINT64_MAX, 10 },
	};
	uint8_t buf[16];
	size_t i, j, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t back = 0;

		memset(buf, 0xee, sizeof(buf));
		n = wire_put_varint(buf, cases[i].v);
		assert_int_equal(n, cases[i].n);
		assert_int_equal(buf[n], 0xee);		/* nothing past the end */
		for (j = 0; j < n; j++) {
			/* Continuation bit on all bytes but the last. */
			assert_int_equal(!!(buf[j] & 0x80), j + 1 < n);
			back |= (uint64_t)(buf[j] & 0x7f) << (7 * j);
		}
		assert_int_equal(back, cases[i].v);
	}
	n = wire_put_varint(buf, 300);
	assert_int_equal(buf[0], 0xac);
	assert_int_equal(buf[1], 0x02);
}

static void
test_batch_roundtrip(void **state)
{
	struct batch b;
	struct dl x[NITEMS];
	Mux__MuxToSvm *m;
	size_t i;

	(void)state;
	assert_int_equal(batch_init(&b, MAX_BYTES, MAX_ITEM), 0);
	assert_int_equal(b.count, 0);
	assert_int_equal(b.len, 0);
	for (i = 0; i < NITEMS; i++) {
		/* seqs from 1 to past 2^14, paths of 0..~500 bytes */
		dl_make(&x[i], 1 + i * 397, (i * 37) % 500);
		assert_true(batch_fits(&b, (uint32_t)x[i].len, NITEMS, MAX_BYTES));
		add(&b, &x[i]);
		assert_int_equal(b.count, i + 1);
	}
	m = finish_decode(&b);
	for (i = 0; i < NITEMS; i++)
		check_delivery(m->batch->deliveries[i], 1 + i * 397, (i * 37) % 500);
	mux__mux_to_svm__free_unpacked(m, NULL);

	/* Finishing twice gives the same frame. */
	m = finish_decode(&b);
	assert_int_equal(m->batch->n_deliveries, NITEMS);
	mux__mux_to_svm__free_unpacked(m, NULL);

	/* Reset, then reuse the same buffer for a second batch. */
	b.urgent = 1;
	batch_reset(&b);
	assert_int_equal(b.count, 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.urgent, 0);
	for (i = 0; i < 3; i++)
		add(&b, &x[NITEMS - 1 - i]);
	m = finish_decode(&b);
	for (i = 0; i < 3; i++)
		check_delivery(m->batch->deliveries[i], 1 + (NITEMS - 1 - i) * 397,
		    ((NITEMS - 1 - i) * 37) % 500);
	mux__mux_to_svm__free_unpacked(m, NULL);

	for (i = 0; i < NITEMS; i++)
		dl_free(&x[i]);
	batch_free(&b);
	assert_null(b.buf);
}

/* An empty batch is still a valid frame: MuxToSvm { batch {} }. */
static void
test_batch_empty(void **state)
{
	struct batch b;
	const uint8_t *frame;
	size_t framelen;
	Mux__MuxToSvm *m;

	(void)state;
	assert_int_equal(batch_init(&b, MAX_BYTES, MAX_ITEM), 0);
	frame = batch_finish(&b, &framelen);
	assert_int_equal(framelen, FRAME_HDR_LEN + 2);
	assert_memory_equal(frame, "\x00\x00\x00\x02\x22\x00", 6);
	m = finish_decode(&b);
	assert_int_equal(m->batch->n_deliveries, 0);
	mux__mux_to_svm__free_unpacked(m, NULL);
	batch_free(&b);
}

/* Item lengths across the 1/2 and 2/3-byte varint boundaries. */
static void
test_item_varint_boundaries(void **state)
{
	static const size_t lens[] = { 127, 128, 16383, 16384 };
	struct dl x[4];
	uint64_t seq[4];
	struct batch b;
	Mux__MuxToSvm *m;
	const uint8_t *frame;
	size_t framelen, i, h, off;

	(void)state;
	for (i = 0; i < 4; i++) {
		dl_make_exact(&x[i], lens[i], &seq[i]);
		assert_int_equal(x[i].len, lens[i]);
	}

	/* Each alone: check the item header bytes, then decode. */
	for (i = 0; i < 4; i++) {
		uint8_t want[8];
		size_t wn;

		assert_int_equal(batch_init(&b, MAX_BYTES, MAX_ITEM), 0);
		add(&b, &x[i]);
		assert_int_equal(b.len, 1 + varint_len(lens[i]) + lens[i]);
		frame = batch_finish(&b, &framelen);
		/* header, 0x22, varint(b.len), then 0x0a varint(len) */
		h = FRAME_HDR_LEN + 1 + varint_len(b.len);
		assert_int_equal(frame[FRAME_HDR_LEN], 0x22);
		want[0] = 0x0a;
		wn = 1 + wire_put_varint(want + 1, lens[i]);
		assert_memory_equal(frame + h, want, wn);
		assert_memory_equal(frame + h + wn, x[i].packed, lens[i]);
		m = finish_decode(&b);
		check_delivery(m->batch->deliveries[0], seq[i],
		    strlen(x[i].path));
		mux__mux_to_svm__free_unpacked(m, NULL);
		batch_free(&b);
	}
	/* Spot-check the encodings themselves. */
	assert_int_equal(varint_len(127), 1);
	assert_int_equal(varint_len(128), 2);
	assert_int_equal(varint_len(16383), 2);
	assert_int_equal(varint_len(16384), 3);

	/* All four in one batch, twice, in a mixed order. */
	assert_int_equal(batch_init(&b, MAX_BYTES, MAX_ITEM), 0);
	for (i = 0; i < 8; i++)
		add(&b, &x[(i * 3) % 4]);
	m = finish_decode(&b);
	off = 0;
	for (i = 0; i < 8; i++) {
		size_t j = (i * 3) % 4;

		check_delivery(m->batch->deliveries[i], seq[j], strlen(x[j].path));
		off += 1 + varint_len(lens[j]) + lens[j];
	}
	assert_int_equal(off, b.len);
	mux__mux_to_svm__free_unpacked(m, NULL);
	batch_free(&b);

	for (i = 0; i < 4; i++)
		dl_free(&x[i]);
}

/* Batch body lengths (the MuxToSvm.batch varint) across boundaries. */
static void
test_batch_varint_boundaries(void **state)
{
	static const size_t totals[] = { 127, 128, 16383, 16384,
	    2097151, 2097152 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
		struct batch b;
		struct dl x;
		uint64_t seq;
		const uint8_t *frame;
		size_t framelen, item, want_body;
		Mux__MuxToSvm *m;

		/* One item of length L: b.len = 1 + varint(L) + L. */
		item = totals[i] - 2;
		while (1 + varint_len(item) + item > totals[i])
			item--;
		assert_int_equal(1 + varint_len(item) + item, totals[i]);
		dl_make_exact(&x, item, &seq);
		assert_int_equal(batch_init(&b, MAX_BYTES, BIG_ITEM), 0);
		add(&b, &x);
		assert_int_equal(b.len, totals[i]);
		frame = batch_finish(&b, &framelen);
		want_body = 1 + varint_len(totals[i]) + totals[i];
		assert_int_equal(framelen, FRAME_HDR_LEN + want_body);
		assert_int_equal(frame[0], (want_body >> 24) & 0xff);
		assert_int_equal(frame[1], (want_body >> 16) & 0xff);
		assert_int_equal(frame[2], (want_body >> 8) & 0xff);
		assert_int_equal(frame[3], want_body & 0xff);
		assert_int_equal(frame[4], 0x22);
		m = finish_decode(&b);
		check_delivery(m->batch->deliveries[0], seq, strlen(x.path));
		mux__mux_to_svm__free_unpacked(m, NULL);
		batch_free(&b);
		dl_free(&x);
	}
}

static void
test_item_abort(void **state)
{
	struct batch b;
	struct dl x[4];
	Mux__MuxToSvm *m;
	uint8_t *p;
	size_t len0;
	uint32_t count0;
	size_t i;

	(void)state;
	for (i = 0; i < 4; i++)
		dl_make(&x[i], 10 + i, 20 + i * 150);
	assert_int_equal(batch_init(&b, MAX_BYTES, MAX_ITEM), 0);

	/* Abort as the very first item: back to empty. */
	p = batch_item_begin(&b, (uint32_t)x[0].len);
	memcpy(p, x[0].packed, x[0].len / 2);	/* a half-done copy */
	batch_item_abort(&b);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.count, 0);

	add(&b, &x[0]);
	len0 = b.len;
	count0 = b.count;
	/* Abort in the middle: the item header is taken back too. */
	p = batch_item_begin(&b, (uint32_t)x[1].len);
	assert_true(b.len > len0);
	memset(p, 0xff, x[1].len);		/* garbage the abort must drop */
	batch_item_abort(&b);
	assert_int_equal(b.len, len0);
	assert_int_equal(b.count, count0);

	add(&b, &x[2]);
	/* Abort an item whose length needs a 2-byte varint. */
	p = batch_item_begin(&b, 16384);
	assert_int_equal(p - (b.buf + BATCH_RESERVE), b.len);
	batch_item_abort(&b);
	add(&b, &x[3]);

	m = finish_decode(&b);
	assert_int_equal(m->batch->n_deliveries, 3);
	check_delivery(m->batch->deliveries[0], 10, 20);
	check_delivery(m->batch->deliveries[1], 12, 320);
	check_delivery(m->batch->deliveries[2], 13, 470);
	mux__mux_to_svm__free_unpacked(m, NULL);

	batch_free(&b);
	for (i = 0; i < 4; i++)
		dl_free(&x[i]);
}

static void
test_fits(void **state)
{
	struct batch b;
	struct dl x;
	uint32_t room;

	(void)state;
	assert_int_equal(batch_init(&b, 1000, 4000), 0);

	/* Empty: one item always fits, whatever the limits say. */
	assert_true(batch_fits(&b, 0, 10, 1000));
	assert_true(batch_fits(&b, 4000, 10, 1000));
	assert_true(batch_fits(&b, UINT32_MAX, 10, 1000));
	assert_true(batch_fits(&b, 100, 0, 0));
	assert_true(batch_fits(&b, 100, 1, 10));

	/* The oversized first item goes in without overflowing the buffer. */
	dl_make(&x, 1, 3900);
	assert_true(x.len > 1000 && x.len <= 4000);
	add(&b, &x);
	dl_free(&x);
	assert_true(BATCH_RESERVE + b.len <= b.cap);
	/* ... and then nothing else does. */
	assert_false(batch_fits(&b, 1, 100, 1000));
	assert_false(batch_fits(&b, 0, 100, 1000));
	batch_reset(&b);

	/* By events: max_events items, then no more. */
	dl_make(&x, 2, 10);
	while (batch_fits(&b, (uint32_t)x.len, 7, 1000))
		add(&b, &x);
	assert_int_equal(b.count, 7);
	assert_false(batch_fits(&b, 0, 7, 1000));
	assert_true(batch_fits(&b, 0, 8, 1000));
	/* max_events 1: only the first. */
	assert_false(batch_fits(&b, 1, 1, 1000));
	batch_reset(&b);

	/* By bytes: len + item header (up to 6 bytes) must stay within max. */
	add(&b, &x);
	room = (uint32_t)(1000 - b.len - 6);
	assert_true(batch_fits(&b, room, 100, 1000));
	assert_false(batch_fits(&b, room + 1, 100, 1000));
	assert_false(batch_fits(&b, UINT32_MAX, 100, 1000));
	assert_true(batch_fits(&b, room + 10, 100, 1010));
	batch_reset(&b);

	/* Fill by bytes with mixed sizes; the result stays within max_bytes. */
	{
		size_t i = 0, total = 0;

		for (;;) {
			struct dl y;

			dl_make(&y, 3 + i, (i * 53) % 200);
			if (!batch_fits(&b, (uint32_t)y.len, 1000, 1000)) {
				dl_free(&y);
				break;
			}
			add(&b, &y);
			total += 1 + varint_len(y.len) + y.len;
			dl_free(&y);
			i++;
		}
		assert_true(b.count > 1);
		assert_int_equal(b.len, total);
		assert_true(b.len <= 1000);
		assert_true(BATCH_RESERVE + b.len <= b.cap);
		{
			Mux__MuxToSvm *m = finish_decode(&b);

			for (i = 0; i < b.count; i++)
				check_delivery(m->batch->deliveries[i], 3 + i,
				    (i * 53) % 200);
			mux__mux_to_svm__free_unpacked(m, NULL);
		}
	}

	dl_free(&x);
	batch_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint),
		cmocka_unit_test(test_batch_roundtrip),
		cmocka_unit_test(test_batch_empty),
		cmocka_unit_test(test_item_varint_boundaries),
		cmocka_unit_test(test_batch_varint_boundaries),
		cmocka_unit_test(test_item_abort),
		cmocka_unit_test(test_fits),
	};

	return cmocka_run_group_tests_name("batch", tests, NULL, NULL);
}
