/*
 * test_frame.c: the framing codec (frame.c, frame_ev.c): length prefix
 * limits, frames arriving a byte at a time, and the budgeted decode arena.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "frame.h"
#include "frame_ev.h"
#include "mux.pb-c.h"

#define CAP		FRAME_AGENT_MAX_DEFAULT
#define NEVENTS		4	/* events in the byte-at-a-time message */
#define HOSTILE_EVENTS	20000	/* empty Events in the small hostile frame */
#define LEGIT_PATH	200	/* path length of the legitimate 64 KiB frame */
#define REUSE_ROUNDS	1000

/* ---- helpers ---- */

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static size_t
put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/*
 * The arena keeps its chunk type private. Its first two members are
 * `next` and `size` (frame.c); read them with memcpy to count chunks.
 */
static void *
chunk_next(const void *c)
{
	void *next;

	memcpy(&next, c, sizeof(next));
	return next;
}

static size_t
chunk_size(const void *c)
{
	size_t sz;

	memcpy(&sz, (const char *)c + sizeof(void *), sizeof(sz));
	return sz;
}

static size_t
arena_nchunks(const struct frame_arena *a)
{
	const void *c;
	size_t n = 0;

	for (c = a->chunks; c != NULL; c = chunk_next(c))
		n++;
	return n;
}

static size_t
arena_bytes(const struct frame_arena *a)
{
	const void *c;
	size_t n = 0;

	for (c = a->chunks; c != NULL; c = chunk_next(c))
		n += chunk_size(c);
	return n;
}

/* Storage for one EventBatch of file events built on the stack of a test. */
struct file_batch {
	Mux__AgentMessage	 msg;
	Mux__EventBatch		 batch;
	Mux__Event		*ptrs[1024];
	Mux__Event		 ev[1024];
	Mux__FileEvent		 fe[1024];
	char			 path[1024][LEGIT_PATH + 1];
};

static void
path_of(char *buf, size_t len, size_t i)
{
	size_t k;

	for (k = 0; k < len; k++)
		buf[k] = (char)('a' + (i + k) % 26);
	buf[len] = '\0';
	buf[0] = '/';
}

static void
file_batch_build(struct file_batch *fb, size_t n, size_t pathlen)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__EventBatch b = MUX__EVENT_BATCH__INIT;
	size_t i;

	assert_true(n <= 1024);
	fb->msg = m;
	fb->batch = b;
	for (i = 0; i < n; i++) {
		Mux__Event e = MUX__EVENT__INIT;
		Mux__FileEvent f = MUX__FILE_EVENT__INIT;

		path_of(fb->path[i], pathlen, i);
		f.op = MUX__FILE_EVENT__OP__OPEN + (int)(i % 7);
		f.file_id = 1000 + i;
		f.path = fb->path[i];
		f.pid = (uint32_t)(4000 + i);
		f.user = "root";
		fb->fe[i] = f;
		e.event_id = i + 1;
		e.time_ns = 1700000000000000000ull + i;
		e.body_case = MUX__EVENT__BODY_FILE;
		fb->ev[i] = e;
		fb->ev[i].file = &fb->fe[i];
		fb->ptrs[i] = &fb->ev[i];
	}
	fb->batch.n_events = n;
	fb->batch.events = fb->ptrs;
	fb->msg.msg_case = MUX__AGENT_MESSAGE__MSG_EVENTS;
	fb->msg.events = &fb->batch;
}

static void
file_batch_check(const Mux__AgentMessage *m, size_t n, size_t pathlen)
{
	char want[LEGIT_PATH + 1];
	size_t i;

	assert_non_null(m);
	assert_int_equal(m->msg_case, MUX__AGENT_MESSAGE__MSG_EVENTS);
	assert_non_null(m->events);
	assert_int_equal(m->events->n_events, n);
	for (i = 0; i < n; i++) {
		const Mux__Event *e = m->events->events[i];

		path_of(want, pathlen, i);
		assert_int_equal(e->event_id, i + 1);
		assert_int_equal(e->time_ns, 1700000000000000000ull + i);
		assert_int_equal(e->body_case, MUX__EVENT__BODY_FILE);
		assert_int_equal(e->file->op, MUX__FILE_EVENT__OP__OPEN + (int)(i % 7));
		assert_int_equal(e->file->file_id, 1000 + i);
		assert_int_equal(e->file->pid, 4000 + i);
		assert_string_equal(e->file->path, want);
		assert_string_equal(e->file->user, "root");
		assert_string_equal(e->file->new_path, "");
	}
}

/* A mixed AgentMessage: file, network and process events. */
struct mixed {
	Mux__AgentMessage	 msg;
	Mux__EventBatch		 batch;
	Mux__Event		*ptrs[NEVENTS];
	Mux__Event		 ev[NEVENTS];
	Mux__FileEvent		 fe;
	Mux__NetworkEvent	 ne;
	Mux__ProcessEvent	 pe;
	Mux__VmEvent		 ve;
	uint8_t			 addr4[4];
	uint8_t			 addr6[16];
};

static void
mixed_build(struct mixed *x)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__EventBatch b = MUX__EVENT_BATCH__INIT;
	Mux__Event e = MUX__EVENT__INIT;
	Mux__FileEvent fe = MUX__FILE_EVENT__INIT;
	Mux__NetworkEvent ne = MUX__NETWORK_EVENT__INIT;
	Mux__ProcessEvent pe = MUX__PROCESS_EVENT__INIT;
	Mux__VmEvent ve = MUX__VM_EVENT__INIT;
	size_t i;

	memset(x, 0, sizeof(*x));
	x->msg = m;
	x->batch = b;
	for (i = 0; i < NEVENTS; i++) {
		x->ev[i] = e;
		x->ev[i].event_id = 10 + i;
		x->ev[i].time_ns = 99000 + i;
		x->ptrs[i] = &x->ev[i];
	}
	fe.op = MUX__FILE_EVENT__OP__CLOSE_MODIFIED;
	fe.path = "/etc/passwd";
	fe.new_path = "/etc/passwd.new";
	fe.size = 1234567890123ull;
	fe.file_id = 42;
	x->fe = fe;
	x->ev[0].reply_expected = 1;
	x->ev[0].body_case = MUX__EVENT__BODY_FILE;
	x->ev[0].file = &x->fe;

	memcpy(x->addr4, "\x0a\x00\x00\x01", 4);
	memset(x->addr6, 0xfe, sizeof(x->addr6));
	ne.op = MUX__NETWORK_EVENT__OP__PRE_CONNECT;
	ne.protocol = 6;
	ne.local_addr.data = x->addr4;
	ne.local_addr.len = sizeof(x->addr4);
	ne.remote_addr.data = x->addr6;
	ne.remote_addr.len = sizeof(x->addr6);
	ne.remote_port = 443;
	ne.bytes_out = 77;
	x->ne = ne;
	x->ev[1].body_case = MUX__EVENT__BODY_NETWORK;
	x->ev[1].network = &x->ne;

	pe.op = MUX__PROCESS_EVENT__OP__SCRIPT;
	pe.pid = 321;
	pe.ppid = 1;
	pe.cmdline = "sh -c 'echo hi'";
	pe.script.data = (uint8_t *)"echo hi\n";
	pe.script.len = 8;
	x->pe = pe;
	x->ev[2].body_case = MUX__EVENT__BODY_PROCESS;
	x->ev[2].process = &x->pe;

	ve.op = MUX__VM_EVENT__OP__EVENTS_DROPPED;
	ve.detail = "lost 3";
	x->ve = ve;
	x->ev[3].body_case = MUX__EVENT__BODY_VM;
	x->ev[3].vm = &x->ve;

	x->batch.n_events = NEVENTS;
	x->batch.events = x->ptrs;
	x->msg.msg_case = MUX__AGENT_MESSAGE__MSG_EVENTS;
	x->msg.events = &x->batch;
}

static void
mixed_check(const Mux__AgentMessage *m)
{
	const Mux__Event *const *ev;

	assert_non_null(m);
	assert_int_equal(m->msg_case, MUX__AGENT_MESSAGE__MSG_EVENTS);
	assert_int_equal(m->events->n_events, NEVENTS);
	ev = (const Mux__Event *const *)m->events->events;
	assert_int_equal(ev[0]->event_id, 10);
	assert_int_equal(ev[3]->time_ns, 99003);
	assert_true(ev[0]->reply_expected);
	assert_false(ev[1]->reply_expected);

	assert_int_equal(ev[0]->body_case, MUX__EVENT__BODY_FILE);
	assert_int_equal(ev[0]->file->op, MUX__FILE_EVENT__OP__CLOSE_MODIFIED);
	assert_string_equal(ev[0]->file->path, "/etc/passwd");
	assert_string_equal(ev[0]->file->new_path, "/etc/passwd.new");
	assert_int_equal(ev[0]->file->size, 1234567890123ull);
	assert_int_equal(ev[0]->file->file_id, 42);

	assert_int_equal(ev[1]->body_case, MUX__EVENT__BODY_NETWORK);
	assert_int_equal(ev[1]->network->op, MUX__NETWORK_EVENT__OP__PRE_CONNECT);
	assert_int_equal(ev[1]->network->protocol, 6);
	assert_int_equal(ev[1]->network->local_addr.len, 4);
	assert_memory_equal(ev[1]->network->local_addr.data, "\x0a\x00\x00\x01", 4);
	assert_int_equal(ev[1]->network->remote_addr.len, 16);
	assert_int_equal(ev[1]->network->remote_addr.data[15], 0xfe);
	assert_int_equal(ev[1]->network->remote_port, 443);
	assert_int_equal(ev[1]->network->bytes_out, 77);

	assert_int_equal(ev[2]->body_case, MUX__EVENT__BODY_PROCESS);
	assert_int_equal(ev[2]->process->op, MUX__PROCESS_EVENT__OP__SCRIPT);
	assert_int_equal(ev[2]->process->pid, 321);
	assert_string_equal(ev[2]->process->cmdline, "sh -c 'echo hi'");
	assert_int_equal(ev[2]->process->script.len, 8);
	assert_memory_equal(ev[2]->process->script.data, "echo hi\n", 8);

	assert_int_equal(ev[3]->body_case, MUX__EVENT__BODY_VM);
	assert_int_equal(ev[3]->vm->op, MUX__VM_EVENT__OP__EVENTS_DROPPED);
	assert_string_equal(ev[3]->vm->detail, "lost 3");
}

/* The mixed message as one frame in a flat, malloc'ed buffer. */
static uint8_t *
mixed_frame(size_t *len)
{
	struct mixed x;
	uint8_t *buf;

	mixed_build(&x);
	buf = malloc(FRAME_HDR_LEN +
	    protobuf_c_message_get_packed_size(&x.msg.base));
	assert_non_null(buf);
	*len = frame_pack(&x.msg.base, buf);
	return buf;
}

/* ---- frame_scan ---- */

static void
test_scan_lengths(void **state)
{
	static uint8_t buf[FRAME_HDR_LEN + CAP + 1];
	uint32_t body_len;

	(void)state;
	memset(buf, 0x5a, sizeof(buf));

	put_u32(buf, 0);
	assert_int_equal(frame_scan(buf, sizeof(buf), CAP, &body_len),
	    FRAME_ERR_EMPTY);

	put_u32(buf, 1);
	body_len = 0;
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN + 1, CAP, &body_len),
	    FRAME_OK);
	assert_int_equal(body_len, 1);

	put_u32(buf, CAP - 1);
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN + CAP - 1, CAP, &body_len),
	    FRAME_OK);
	assert_int_equal(body_len, CAP - 1);

	put_u32(buf, CAP);
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN + CAP, CAP, &body_len),
	    FRAME_OK);
	assert_int_equal(body_len, CAP);

	/* Too big even with the whole (oversized) body present. */
	put_u32(buf, CAP + 1);
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN + CAP + 1, CAP, &body_len),
	    FRAME_ERR_TOO_BIG);

	put_u32(buf, UINT32_MAX);
	assert_int_equal(frame_scan(buf, sizeof(buf), CAP, &body_len),
	    FRAME_ERR_TOO_BIG);
	/* ... also against the largest possible limit minus one. */
	assert_int_equal(frame_scan(buf, sizeof(buf), UINT32_MAX - 1, &body_len),
	    FRAME_ERR_TOO_BIG);

	/* The SVM default limit. */
	put_u32(buf, FRAME_SVM_MAX_DEFAULT + 1);
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN, FRAME_SVM_MAX_DEFAULT,
	    &body_len), FRAME_ERR_TOO_BIG);
	put_u32(buf, FRAME_SVM_MAX_DEFAULT);
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN, FRAME_SVM_MAX_DEFAULT,
	    &body_len), FRAME_NEED_MORE);
	assert_int_equal(body_len, FRAME_SVM_MAX_DEFAULT);
}

static void
test_scan_header_incomplete(void **state)
{
	/* Headers that would be an error, or a frame, once complete. */
	static const uint8_t hdrs[][FRAME_HDR_LEN] = {
		{ 0x00, 0x00, 0x00, 0x00 },		/* empty */
		{ 0xff, 0xff, 0xff, 0xff },		/* too big */
		{ 0x00, 0x00, 0x00, 0x01 },		/* ok */
	};
	uint32_t body_len;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
		for (n = 0; n < FRAME_HDR_LEN; n++) {
			body_len = 0xdeadbeef;
			assert_int_equal(frame_scan(hdrs[i], n, CAP, &body_len),
			    FRAME_NEED_MORE);
			/* Nothing is reported from a partial header. */
			assert_int_equal(body_len, 0xdeadbeef);
		}
	assert_int_equal(frame_scan(NULL, 0, CAP, &body_len), FRAME_NEED_MORE);
}

static void
test_scan_body_incomplete(void **state)
{
	uint8_t buf[FRAME_HDR_LEN + 11];
	uint32_t body_len;
	size_t n;

	(void)state;
	memset(buf, 0, sizeof(buf));
	put_u32(buf, 10);
	for (n = FRAME_HDR_LEN; n < FRAME_HDR_LEN + 10; n++) {
		body_len = 0;
		assert_int_equal(frame_scan(buf, n, CAP, &body_len),
		    FRAME_NEED_MORE);
		/* Once the header is there the length is known. */
		assert_int_equal(body_len, 10);
	}
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN + 10, CAP, &body_len),
	    FRAME_OK);
	assert_int_equal(body_len, 10);
	/* Bytes of the next frame do not change this one. */
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN + 11, CAP, &body_len),
	    FRAME_OK);
	assert_int_equal(body_len, 10);
}

/* An error is known from the four header bytes, before any body. */
static void
test_scan_header_decides(void **state)
{
	uint8_t hdr[FRAME_HDR_LEN];
	uint32_t body_len;

	(void)state;
	put_u32(hdr, CAP + 1);
	assert_int_equal(frame_scan(hdr, sizeof(hdr), CAP, &body_len),
	    FRAME_ERR_TOO_BIG);
	put_u32(hdr, UINT32_MAX);
	assert_int_equal(frame_scan(hdr, sizeof(hdr), CAP, &body_len),
	    FRAME_ERR_TOO_BIG);
	put_u32(hdr, 0);
	assert_int_equal(frame_scan(hdr, sizeof(hdr), CAP, &body_len),
	    FRAME_ERR_EMPTY);
	put_u32(hdr, CAP);
	assert_int_equal(frame_scan(hdr, sizeof(hdr), CAP, &body_len),
	    FRAME_NEED_MORE);
	assert_int_equal(body_len, CAP);
}

static void
test_header_and_reasons(void **state)
{
	static const uint32_t vals[] = { 0, 1, 0x7f, 0x80, 0xff, 0x100,
	    0x10000, 0x01020304, 0xfffffffe, UINT32_MAX };
	uint8_t hdr[FRAME_HDR_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint8_t want[FRAME_HDR_LEN];

		frame_put_header(hdr, vals[i]);
		put_u32(want, vals[i]);
		assert_memory_equal(hdr, want, FRAME_HDR_LEN);
	}
	frame_put_header(hdr, 0x01020304);
	assert_int_equal(hdr[0], 1);
	assert_int_equal(hdr[3], 4);

	assert_string_equal(frame_status_reason(FRAME_ERR_EMPTY), "empty_frame");
	assert_string_equal(frame_status_reason(FRAME_ERR_TOO_BIG), "frame_too_big");
	assert_string_equal(frame_status_reason(FRAME_OK), "ok");
	assert_string_equal(frame_decode_reason(FRAME_DECODE_BAD), "decode");
	assert_string_equal(frame_decode_reason(FRAME_DECODE_BUDGET), "alloc_budget");
	assert_string_equal(frame_decode_reason(FRAME_DECODE_OK), "ok");

	assert_int_equal(frame_budget(0), FRAME_BUDGET_SLACK);
	assert_int_equal(frame_budget(CAP),
	    (size_t)CAP * FRAME_BUDGET_FACTOR + FRAME_BUDGET_SLACK);
	/* No overflow at the top of the range. */
	assert_true(frame_budget(UINT32_MAX) > UINT32_MAX);
}

/* ---- frame_ev ---- */

static void
feed_one_at_a_time(int by_reference)
{
	struct evbuffer *in;
	struct frame_arena a;
	enum frame_decode_result res;
	const uint8_t *body = NULL;
	ProtobufCMessage *m;
	uint8_t *frame;
	uint32_t body_len = 0;
	size_t len, i;

	frame = mixed_frame(&len);
	assert_true(len > FRAME_HDR_LEN + 100);
	in = evbuffer_new();
	assert_non_null(in);
	frame_arena_init(&a);

	assert_int_equal(frame_ev_peek(in, CAP, &body, &body_len), FRAME_NEED_MORE);
	for (i = 0; i < len; i++) {
		enum frame_status st;

		/* By reference: every byte its own chain, so peek must pull up. */
		if (by_reference)
			assert_int_equal(evbuffer_add_reference(in, frame + i, 1,
			    NULL, NULL), 0);
		else
			assert_int_equal(evbuffer_add(in, frame + i, 1), 0);
		st = frame_ev_peek(in, CAP, &body, &body_len);
		if (i + 1 < len) {
			if (st != FRAME_NEED_MORE)
				fail_msg("byte %zu of %zu: status %d, want NEED_MORE",
				    i + 1, len, (int)st);
			/* Nothing is consumed while waiting. */
			assert_int_equal(evbuffer_get_length(in), i + 1);
		} else
			assert_int_equal(st, FRAME_OK);
	}
	assert_int_equal(body_len, len - FRAME_HDR_LEN);
	assert_memory_equal(body, frame + FRAME_HDR_LEN, body_len);

	m = frame_decode(&mux__agent_message__descriptor, body, body_len, &a, &res);
	assert_int_equal(res, FRAME_DECODE_OK);
	mixed_check((const Mux__AgentMessage *)m);

	frame_ev_consume(in, body_len);
	assert_int_equal(evbuffer_get_length(in), 0);
	assert_int_equal(frame_ev_peek(in, CAP, &body, &body_len), FRAME_NEED_MORE);

	frame_arena_destroy(&a);
	evbuffer_free(in);
	free(frame);
}

static void
test_ev_one_byte_at_a_time(void **state)
{
	(void)state;
	feed_one_at_a_time(0);
}

static void
test_ev_one_byte_chains(void **state)
{
	(void)state;
	feed_one_at_a_time(1);
}

/* A refused header is refused at once, with no body buffered. */
static void
test_ev_header_decides(void **state)
{
	struct evbuffer *in;
	const uint8_t *body = NULL;
	uint32_t body_len = 0;
	uint8_t hdr[FRAME_HDR_LEN];
	size_t i;

	(void)state;
	in = evbuffer_new();
	assert_non_null(in);

	put_u32(hdr, CAP + 1);
	for (i = 0; i < FRAME_HDR_LEN; i++) {
		assert_int_equal(evbuffer_add(in, hdr + i, 1), 0);
		assert_int_equal(frame_ev_peek(in, CAP, &body, &body_len),
		    i + 1 < FRAME_HDR_LEN ? FRAME_NEED_MORE : FRAME_ERR_TOO_BIG);
	}
	assert_int_equal(evbuffer_get_length(in), FRAME_HDR_LEN);
	evbuffer_drain(in, FRAME_HDR_LEN);

	put_u32(hdr, UINT32_MAX);
	assert_int_equal(evbuffer_add(in, hdr, sizeof(hdr)), 0);
	assert_int_equal(frame_ev_peek(in, CAP, &body, &body_len),
	    FRAME_ERR_TOO_BIG);
	evbuffer_drain(in, FRAME_HDR_LEN);

	put_u32(hdr, 0);
	assert_int_equal(evbuffer_add(in, hdr, sizeof(hdr)), 0);
	assert_int_equal(frame_ev_peek(in, CAP, &body, &body_len),
	    FRAME_ERR_EMPTY);
	evbuffer_drain(in, FRAME_HDR_LEN);

	/* A legal length with no body yet waits. */
	put_u32(hdr, CAP);
	assert_int_equal(evbuffer_add(in, hdr, sizeof(hdr)), 0);
	assert_int_equal(frame_ev_peek(in, CAP, &body, &body_len),
	    FRAME_NEED_MORE);

	evbuffer_free(in);
}

static void
test_ev_back_to_back(void **state)
{
	struct evbuffer *buf;
	struct frame_arena a;
	enum frame_decode_result res;
	Mux__MuxToAgent m1 = MUX__MUX_TO_AGENT__INIT;
	Mux__MuxToAgent m2 = MUX__MUX_TO_AGENT__INIT;
	Mux__Verdict v = MUX__VERDICT__INIT;
	Mux__Heartbeat hb = MUX__HEARTBEAT__INIT;
	const Mux__MuxToAgent *got;
	const uint8_t *body;
	uint32_t body_len, len1;
	uint8_t *flat;
	size_t total;

	(void)state;
	buf = evbuffer_new();
	assert_non_null(buf);
	frame_arena_init(&a);

	v.event_id = 77;
	v.action = MUX__ACTION__DENY;
	v.service_id = "av";
	v.reason = "eicar";
	m1.msg_case = MUX__MUX_TO_AGENT__MSG_VERDICT;
	m1.verdict = &v;
	hb.time_ns = 123456789;
	m2.msg_case = MUX__MUX_TO_AGENT__MSG_HEARTBEAT;
	m2.heartbeat = &hb;
	assert_int_equal(frame_ev_send(buf, &m1.base, CAP), 0);
	assert_int_equal(frame_ev_send(buf, &m2.base, CAP), 0);
	total = evbuffer_get_length(buf);

	/* The same two frames, with frame_scan over a flat copy. */
	flat = malloc(total);
	assert_non_null(flat);
	assert_int_equal(evbuffer_copyout(buf, flat, total), (ev_ssize_t)total);
	assert_int_equal(frame_scan(flat, total, CAP, &len1), FRAME_OK);
	assert_int_equal(len1, protobuf_c_message_get_packed_size(&m1.base));
	assert_int_equal(frame_scan(flat + FRAME_HDR_LEN + len1,
	    total - FRAME_HDR_LEN - len1, CAP, &body_len), FRAME_OK);
	assert_int_equal(FRAME_HDR_LEN + len1 + FRAME_HDR_LEN + body_len, total);
	free(flat);

	assert_int_equal(frame_ev_peek(buf, CAP, &body, &body_len), FRAME_OK);
	assert_int_equal(body_len, len1);
	got = (const Mux__MuxToAgent *)frame_decode(&mux__mux_to_agent__descriptor,
	    body, body_len, &a, &res);
	assert_int_equal(res, FRAME_DECODE_OK);
	assert_int_equal(got->msg_case, MUX__MUX_TO_AGENT__MSG_VERDICT);
	assert_int_equal(got->verdict->event_id, 77);
	assert_int_equal(got->verdict->action, MUX__ACTION__DENY);
	assert_string_equal(got->verdict->service_id, "av");
	assert_string_equal(got->verdict->reason, "eicar");
	frame_ev_consume(buf, body_len);

	assert_int_equal(frame_ev_peek(buf, CAP, &body, &body_len), FRAME_OK);
	got = (const Mux__MuxToAgent *)frame_decode(&mux__mux_to_agent__descriptor,
	    body, body_len, &a, &res);
	assert_int_equal(res, FRAME_DECODE_OK);
	assert_int_equal(got->msg_case, MUX__MUX_TO_AGENT__MSG_HEARTBEAT);
	assert_int_equal(got->heartbeat->time_ns, 123456789);
	frame_ev_consume(buf, body_len);

	assert_int_equal(evbuffer_get_length(buf), 0);
	assert_int_equal(frame_ev_peek(buf, CAP, &body, &body_len), FRAME_NEED_MORE);

	frame_arena_destroy(&a);
	evbuffer_free(buf);
}

static void
test_ev_send_limit(void **state)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__AgentMessage empty = MUX__AGENT_MESSAGE__INIT;
	Mux__FileData fd = MUX__FILE_DATA__INIT;
	struct evbuffer *out;
	static uint8_t data[CAP];
	uint8_t hdr[FRAME_HDR_LEN], want[FRAME_HDR_LEN];
	size_t n;

	(void)state;
	out = evbuffer_new();
	assert_non_null(out);
	memset(data, 0xab, sizeof(data));
	fd.request_id = 5;
	fd.data.data = data;
	fd.data.len = CAP - 16;
	m.msg_case = MUX__AGENT_MESSAGE__MSG_FILE_DATA;
	m.file_data = &fd;
	n = protobuf_c_message_get_packed_size(&m.base);
	assert_true(n > CAP - 16 && n <= CAP);

	/* One byte over the limit: refused, nothing written. */
	assert_int_equal(frame_ev_send(out, &m.base, (uint32_t)n - 1), -1);
	assert_int_equal(evbuffer_get_length(out), 0);
	/* Exactly the limit: sent, header says n. */
	assert_int_equal(frame_ev_send(out, &m.base, (uint32_t)n), 0);
	assert_int_equal(evbuffer_get_length(out), FRAME_HDR_LEN + n);
	evbuffer_copyout(out, hdr, sizeof(hdr));
	put_u32(want, (uint32_t)n);
	assert_memory_equal(hdr, want, sizeof(hdr));
	evbuffer_drain(out, evbuffer_get_length(out));

	/* Larger than the agent link's max_frame. */
	fd.data.len = CAP;
	assert_int_equal(frame_ev_send(out, &m.base, CAP), -1);
	assert_int_equal(evbuffer_get_length(out), 0);
	/* ... but fine on the SVM link. */
	assert_int_equal(frame_ev_send(out, &m.base, FRAME_SVM_MAX_DEFAULT), 0);
	evbuffer_drain(out, evbuffer_get_length(out));

	/* An unset oneof packs to nothing: a length-0 frame is never sent. */
	assert_int_equal(frame_ev_send(out, &empty.base, CAP), -1);
	assert_int_equal(evbuffer_get_length(out), 0);

	evbuffer_free(out);
}

/* ---- frame_pack / frame_decode for each wrapper ---- */

/* Pack m as a frame, check the header, decode it back with desc. */
static ProtobufCMessage *
roundtrip(const ProtobufCMessage *m, const ProtobufCMessageDescriptor *desc,
    struct frame_arena *a, uint8_t **bufp)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	enum frame_decode_result res = FRAME_DECODE_BAD;
	ProtobufCMessage *got;
	uint32_t body_len;
	uint8_t *buf;

	buf = malloc(FRAME_HDR_LEN + n);
	assert_non_null(buf);
	assert_int_equal(frame_pack(m, buf), FRAME_HDR_LEN + n);
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN + n, FRAME_SVM_MAX_DEFAULT,
	    &body_len), FRAME_OK);
	assert_int_equal(body_len, n);
	got = frame_decode(desc, buf + FRAME_HDR_LEN, body_len, a, &res);
	assert_int_equal(res, FRAME_DECODE_OK);
	assert_non_null(got);
	assert_ptr_equal(got->descriptor, desc);
	assert_true(a->used > 0 && a->used <= a->budget);
	*bufp = buf;		/* strings may point into the arena only */
	return got;
}

static void
test_roundtrip_agent_message(void **state)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__AgentHello h = MUX__AGENT_HELLO__INIT;
	Mux__EventClass caps[] = { MUX__EVENT_CLASS__FILE, MUX__EVENT_CLASS__PROCESS };
	const Mux__AgentMessage *got;
	struct frame_arena a;
	uint8_t *buf;

	(void)state;
	frame_arena_init(&a);
	h.protocol_version = 1;
	h.agent_version = "agent-2.3";
	h.os = "linux";
	h.claimed_vm_uuid = "4a1c2f0e-0000-4000-8000-000000000001";
	h.n_capabilities = 2;
	h.capabilities = caps;
	m.msg_case = MUX__AGENT_MESSAGE__MSG_HELLO;
	m.hello = &h;
	got = (const Mux__AgentMessage *)roundtrip(&m.base,
	    &mux__agent_message__descriptor, &a, &buf);
	assert_int_equal(got->msg_case, MUX__AGENT_MESSAGE__MSG_HELLO);
	assert_int_equal(got->hello->protocol_version, 1);
	assert_string_equal(got->hello->agent_version, "agent-2.3");
	assert_string_equal(got->hello->os, "linux");
	assert_string_equal(got->hello->claimed_vm_uuid, h.claimed_vm_uuid);
	assert_int_equal(got->hello->n_capabilities, 2);
	assert_int_equal(got->hello->capabilities[1], MUX__EVENT_CLASS__PROCESS);
	free(buf);

	/* An EventBatch, with every body kind but login. */
	{
		struct mixed x;

		mixed_build(&x);
		got = (const Mux__AgentMessage *)roundtrip(&x.msg.base,
		    &mux__agent_message__descriptor, &a, &buf);
		mixed_check(got);
		free(buf);
	}
	frame_arena_destroy(&a);
}

static void
test_roundtrip_mux_to_agent(void **state)
{
	Mux__MuxToAgent m = MUX__MUX_TO_AGENT__INIT;
	Mux__AgentWelcome w = MUX__AGENT_WELCOME__INIT;
	Mux__SolutionState ss = MUX__SOLUTION_STATE__INIT;
	Mux__Solution s1 = MUX__SOLUTION__INIT, s2 = MUX__SOLUTION__INIT;
	Mux__Solution *sols[] = { &s1, &s2 };
	Mux__EventClass cls[] = { MUX__EVENT_CLASS__NETWORK };
	const Mux__MuxToAgent *got;
	struct frame_arena a;
	uint8_t *buf;

	(void)state;
	frame_arena_init(&a);
	w.protocol_version = 1;
	w.session_id = 0x1122334455667788ull;
	w.cid = 17;
	w.max_frame = CAP;
	w.heartbeat_ms = 5000;
	w.verdict_timeout_ms = 2000;
	m.msg_case = MUX__MUX_TO_AGENT__MSG_WELCOME;
	m.welcome = &w;
	got = (const Mux__MuxToAgent *)roundtrip(&m.base,
	    &mux__mux_to_agent__descriptor, &a, &buf);
	assert_int_equal(got->msg_case, MUX__MUX_TO_AGENT__MSG_WELCOME);
	assert_int_equal(got->welcome->session_id, 0x1122334455667788ull);
	assert_int_equal(got->welcome->cid, 17);
	assert_int_equal(got->welcome->max_frame, CAP);
	assert_int_equal(got->welcome->heartbeat_ms, 5000);
	assert_int_equal(got->welcome->verdict_timeout_ms, 2000);
	free(buf);

	s1.service_id = "av";
	s1.up = 1;
	s1.verdicts = 1;
	s2.service_id = "edr";
	s2.n_classes = 1;
	s2.classes = cls;
	ss.generation = 9;
	ss.n_solutions = 2;
	ss.solutions = sols;
	m.msg_case = MUX__MUX_TO_AGENT__MSG_SOLUTIONS;
	m.solutions = &ss;
	got = (const Mux__MuxToAgent *)roundtrip(&m.base,
	    &mux__mux_to_agent__descriptor, &a, &buf);
	assert_int_equal(got->msg_case, MUX__MUX_TO_AGENT__MSG_SOLUTIONS);
	assert_int_equal(got->solutions->generation, 9);
	assert_int_equal(got->solutions->n_solutions, 2);
	assert_string_equal(got->solutions->solutions[0]->service_id, "av");
	assert_true(got->solutions->solutions[0]->up);
	assert_true(got->solutions->solutions[0]->verdicts);
	assert_string_equal(got->solutions->solutions[1]->service_id, "edr");
	assert_false(got->solutions->solutions[1]->up);
	assert_int_equal(got->solutions->solutions[1]->n_classes, 1);
	assert_int_equal(got->solutions->solutions[1]->classes[0],
	    MUX__EVENT_CLASS__NETWORK);
	free(buf);
	frame_arena_destroy(&a);
}

static void
test_roundtrip_svm_to_mux(void **state)
{
	Mux__SvmToMux m = MUX__SVM_TO_MUX__INIT;
	Mux__Register r = MUX__REGISTER__INIT;
	Mux__SvmReadFile rf = MUX__SVM_READ_FILE__INIT;
	Mux__EventClass cls[] = { MUX__EVENT_CLASS__FILE, MUX__EVENT_CLASS__VM };
	uint32_t cids[] = { 3, 4, 100000 };
	const Mux__SvmToMux *got;
	struct frame_arena a;
	uint8_t *buf;

	(void)state;
	frame_arena_init(&a);
	r.protocol_version = 1;
	r.service_id = "av";
	r.instance_id = "av-1";
	r.n_classes = 2;
	r.classes = cls;
	r.n_vm_cids = 3;
	r.vm_cids = cids;
	r.verdicts = 1;
	r.resume_epoch = 0xfeedfacecafebeefull;
	r.resume_from = 1000;
	r.window = 256;
	m.msg_case = MUX__SVM_TO_MUX__MSG_REGISTER;
	m.register_ = &r;
	got = (const Mux__SvmToMux *)roundtrip(&m.base,
	    &mux__svm_to_mux__descriptor, &a, &buf);
	assert_int_equal(got->msg_case, MUX__SVM_TO_MUX__MSG_REGISTER);
	assert_string_equal(got->register_->service_id, "av");
	assert_string_equal(got->register_->instance_id, "av-1");
	assert_int_equal(got->register_->n_classes, 2);
	assert_int_equal(got->register_->classes[1], MUX__EVENT_CLASS__VM);
	assert_int_equal(got->register_->n_vm_cids, 3);
	assert_int_equal(got->register_->vm_cids[2], 100000);
	assert_true(got->register_->verdicts);
	assert_int_equal(got->register_->resume_epoch, 0xfeedfacecafebeefull);
	assert_int_equal(got->register_->resume_from, 1000);
	assert_int_equal(got->register_->window, 256);
	free(buf);

	rf.request_id = 8;
	rf.seq = 9;
	rf.offset = 4096;
	rf.length = 32768;
	m.msg_case = MUX__SVM_TO_MUX__MSG_READ_FILE;
	m.read_file = &rf;
	got = (const Mux__SvmToMux *)roundtrip(&m.base,
	    &mux__svm_to_mux__descriptor, &a, &buf);
	assert_int_equal(got->msg_case, MUX__SVM_TO_MUX__MSG_READ_FILE);
	assert_int_equal(got->read_file->request_id, 8);
	assert_int_equal(got->read_file->seq, 9);
	assert_int_equal(got->read_file->offset, 4096);
	assert_int_equal(got->read_file->length, 32768);
	free(buf);
	frame_arena_destroy(&a);
}

static void
test_roundtrip_mux_to_svm(void **state)
{
	Mux__MuxToSvm m = MUX__MUX_TO_SVM__INIT;
	Mux__DeliveryBatch db = MUX__DELIVERY_BATCH__INIT;
	Mux__Delivery d[3], *dp[3];
	Mux__VmRef vm = MUX__VM_REF__INIT;
	Mux__Event ev = MUX__EVENT__INIT;
	Mux__LoginEvent le = MUX__LOGIN_EVENT__INIT;
	Mux__Gap gap = MUX__GAP__INIT;
	const Mux__MuxToSvm *got;
	struct frame_arena a;
	uint8_t *buf;
	size_t i;

	(void)state;
	frame_arena_init(&a);
	vm.cid = 42;
	vm.vm_uuid = "uuid-42";
	vm.vm_name = "web-1";
	le.op = MUX__LOGIN_EVENT__OP__LOGON;
	le.user = "alice";
	le.domain = "CORP";
	le.session = 3;
	ev.event_id = 5;
	ev.body_case = MUX__EVENT__BODY_LOGIN;
	ev.login = &le;
	for (i = 0; i < 3; i++) {
		Mux__Delivery init = MUX__DELIVERY__INIT;

		d[i] = init;
		d[i].seq = 100 + i;
		d[i].vm = &vm;
		d[i].agent_session = 7;
		d[i].event = &ev;
		d[i].ingest_time_ns = 555 + i;
		dp[i] = &d[i];
	}
	db.n_deliveries = 3;
	db.deliveries = dp;
	m.msg_case = MUX__MUX_TO_SVM__MSG_BATCH;
	m.batch = &db;
	got = (const Mux__MuxToSvm *)roundtrip(&m.base,
	    &mux__mux_to_svm__descriptor, &a, &buf);
	assert_int_equal(got->msg_case, MUX__MUX_TO_SVM__MSG_BATCH);
	assert_int_equal(got->batch->n_deliveries, 3);
	for (i = 0; i < 3; i++) {
		const Mux__Delivery *g = got->batch->deliveries[i];

		assert_int_equal(g->seq, 100 + i);
		assert_int_equal(g->ingest_time_ns, 555 + i);
		assert_int_equal(g->agent_session, 7);
		assert_int_equal(g->vm->cid, 42);
		assert_string_equal(g->vm->vm_uuid, "uuid-42");
		assert_string_equal(g->vm->vm_name, "web-1");
		assert_int_equal(g->event->body_case, MUX__EVENT__BODY_LOGIN);
		assert_string_equal(g->event->login->user, "alice");
		assert_string_equal(g->event->login->domain, "CORP");
	}
	free(buf);

	gap.first_seq = 10;
	gap.last_seq = 0;
	gap.reason = MUX__GAP__REASON__EPOCH_CHANGED;
	m.msg_case = MUX__MUX_TO_SVM__MSG_GAP;
	m.gap = &gap;
	got = (const Mux__MuxToSvm *)roundtrip(&m.base,
	    &mux__mux_to_svm__descriptor, &a, &buf);
	assert_int_equal(got->msg_case, MUX__MUX_TO_SVM__MSG_GAP);
	assert_int_equal(got->gap->first_seq, 10);
	assert_int_equal(got->gap->last_seq, 0);
	assert_int_equal(got->gap->reason, MUX__GAP__REASON__EPOCH_CHANGED);
	assert_int_equal(got->gap->count, 0);
	free(buf);
	frame_arena_destroy(&a);
}

/* ---- the decode budget ---- */

/*
 * AgentMessage { events (2): EventBatch { events (1): Event {} x n } }:
 * every empty Event is 2 bytes on the wire (0x0a 0x00).
 */
static uint8_t *
hostile_body(size_t nevents, uint32_t *len)
{
	size_t inner = 2 * nevents, h, i;
	uint8_t *p;

	p = malloc(1 + 10 + inner);
	assert_non_null(p);
	p[0] = (2u << 3) | 2u;
	h = 1 + put_varint(p + 1, inner);
	for (i = 0; i < nevents; i++) {
		p[h + 2 * i] = (1u << 3) | 2u;
		p[h + 2 * i + 1] = 0;
	}
	*len = (uint32_t)(h + inner);
	return p;
}

static void
check_refused(size_t nevents, uint32_t want_len)
{
	struct frame_arena a;
	enum frame_decode_result res = FRAME_DECODE_OK;
	ProtobufCMessage *m;
	uint32_t len;
	uint8_t *body;

	body = hostile_body(nevents, &len);
	if (want_len != 0)
		assert_int_equal(len, want_len);
	assert_true(len <= CAP);
	frame_arena_init(&a);
	m = frame_decode(&mux__agent_message__descriptor, body, len, &a, &res);
	assert_null(m);
	assert_int_equal(res, FRAME_DECODE_BUDGET);
	assert_true(a.over);
	assert_int_equal(a.budget, frame_budget(len));
	assert_true(a.used <= a.budget);
	/* What the arena holds stays within a small multiple of the budget. */
	print_message("hostile: %zu empty events in %u bytes: refused after "
	    "%zu of %zu budget bytes, %zu bytes in %zu chunks\n", nevents, len,
	    a.used, a.budget, arena_bytes(&a), arena_nchunks(&a));
	assert_true(arena_bytes(&a) <= 2 * frame_budget(len));
	frame_arena_reset(&a);
	assert_int_equal(a.used, 0);
	assert_false(a.over);
	assert_int_equal(arena_nchunks(&a), 1);
	frame_arena_destroy(&a);
	free(body);
}

static void
test_budget_refuses_empty_submessages(void **state)
{
	(void)state;
	/* 20000 empty events: a 40 KiB frame. */
	check_refused(HOSTILE_EVENTS, 1 + 3 + 2 * HOSTILE_EVENTS);
	/* A full 64 KiB frame of them: 1 tag + 3 varint + 2 * 32766. */
	check_refused((CAP - 4) / 2, CAP);
}

static void
test_budget_allows_legit_frame(void **state)
{
	struct file_batch *fb;
	struct frame_arena a;
	enum frame_decode_result res = FRAME_DECODE_BAD;
	ProtobufCMessage *m;
	uint8_t *buf;
	size_t n, len;
	uint32_t body_len;

	(void)state;
	fb = malloc(sizeof(*fb));
	assert_non_null(fb);
	/* As many ~200-byte-path events as fit in one 64 KiB frame. */
	for (n = 1; n < 1024; n++) {
		file_batch_build(fb, n + 1, LEGIT_PATH);
		if (protobuf_c_message_get_packed_size(&fb->msg.base) > CAP)
			break;
	}
	assert_true(n > 200 && n < 1024);
	file_batch_build(fb, n, LEGIT_PATH);
	len = protobuf_c_message_get_packed_size(&fb->msg.base);
	assert_true(len <= CAP && len > CAP - 300);

	buf = malloc(FRAME_HDR_LEN + len);
	assert_non_null(buf);
	assert_int_equal(frame_pack(&fb->msg.base, buf), FRAME_HDR_LEN + len);
	assert_int_equal(frame_scan(buf, FRAME_HDR_LEN + len, CAP, &body_len),
	    FRAME_OK);

	frame_arena_init(&a);
	m = frame_decode(&mux__agent_message__descriptor, buf + FRAME_HDR_LEN,
	    body_len, &a, &res);
	assert_int_equal(res, FRAME_DECODE_OK);
	assert_false(a.over);
	assert_true(a.used <= a.budget);
	file_batch_check((const Mux__AgentMessage *)m, n, LEGIT_PATH);
	print_message("legit: %zu events in %zu bytes, arena used %zu of %zu\n",
	    n, len, a.used, a.budget);

	frame_arena_destroy(&a);
	free(buf);
	free(fb);
}

static void
test_decode_garbage(void **state)
{
	static const struct {
		const char	*name;
		uint8_t		 b[12];
		uint32_t	 len;
	} cases[] = {
		/* a varint that never ends */
		{ "varint", { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		    0xff, 0xff, 0xff, 0xff }, 12 },
		/* field 0 is never valid */
		{ "field0", { 0x02, 0x00 }, 2 },
		/* events: length 16 with 1 byte present */
		{ "short", { 0x12, 0x10, 0x0a }, 3 },
		/* an event inside claiming more than its batch holds */
		{ "nested", { 0x12, 0x02, 0x0a, 0x05 }, 4 },
		/* the events field as a varint: wrong wire type */
		{ "wiretype", { 0x10, 0x01 }, 2 },
		/* wire type 7 does not exist */
		{ "wt7", { 0x0f, 0x00 }, 2 },
	};
	struct frame_arena a;
	enum frame_decode_result res;
	size_t i;

	(void)state;
	frame_arena_init(&a);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		res = FRAME_DECODE_OK;
		if (frame_decode(&mux__agent_message__descriptor, cases[i].b,
		    cases[i].len, &a, &res) != NULL)
			fail_msg("%s: decoded", cases[i].name);
		if (res != FRAME_DECODE_BAD)
			fail_msg("%s: result %d, want FRAME_DECODE_BAD",
			    cases[i].name, (int)res);
	}
	/* After garbage the arena still works. */
	{
		uint8_t *frame;
		size_t len;
		ProtobufCMessage *m;

		frame = mixed_frame(&len);
		m = frame_decode(&mux__agent_message__descriptor,
		    frame + FRAME_HDR_LEN, (uint32_t)(len - FRAME_HDR_LEN), &a, &res);
		assert_int_equal(res, FRAME_DECODE_OK);
		mixed_check((const Mux__AgentMessage *)m);
		free(frame);
	}
	frame_arena_destroy(&a);
}

static void
test_arena_reuse(void **state)
{
	struct frame_arena a;
	enum frame_decode_result res;
	ProtobufCMessage *m;
	const void *first;
	struct file_batch *fb;
	uint8_t *frame, *big;
	size_t len, biglen, i, nb;
	uint32_t hostile_len;

	(void)state;
	frame = mixed_frame(&len);
	frame_arena_init(&a);
	assert_null(a.chunks);
	assert_int_equal(a.used, 0);
	frame_arena_reset(&a);		/* on an empty arena: harmless */
	assert_null(a.chunks);

	m = frame_decode(&mux__agent_message__descriptor, frame + FRAME_HDR_LEN,
	    (uint32_t)(len - FRAME_HDR_LEN), &a, &res);
	assert_int_equal(res, FRAME_DECODE_OK);
	first = a.chunks;
	assert_non_null(first);
	for (i = 0; i < REUSE_ROUNDS; i++) {
		size_t used;

		m = frame_decode(&mux__agent_message__descriptor,
		    frame + FRAME_HDR_LEN, (uint32_t)(len - FRAME_HDR_LEN), &a, &res);
		assert_int_equal(res, FRAME_DECODE_OK);
		if (i % 100 == 0)
			mixed_check((const Mux__AgentMessage *)m);
		used = a.used;
		assert_true(used > 0);
		frame_arena_reset(&a);
		assert_int_equal(a.used, 0);
		assert_false(a.over);
		/* Same single chunk every time: no growth. */
		assert_ptr_equal(a.chunks, first);
		assert_int_equal(arena_nchunks(&a), 1);
	}

	/* A frame that needs several chunks: back to the first one on reset. */
	fb = malloc(sizeof(*fb));
	assert_non_null(fb);
	file_batch_build(fb, 280, LEGIT_PATH);
	biglen = protobuf_c_message_get_packed_size(&fb->msg.base);
	big = malloc(FRAME_HDR_LEN + biglen);
	assert_non_null(big);
	frame_pack(&fb->msg.base, big);
	m = frame_decode(&mux__agent_message__descriptor, big + FRAME_HDR_LEN,
	    (uint32_t)biglen, &a, &res);
	assert_int_equal(res, FRAME_DECODE_OK);
	file_batch_check((const Mux__AgentMessage *)m, 280, LEGIT_PATH);
	nb = arena_nchunks(&a);
	assert_true(nb > 1);
	frame_arena_reset(&a);
	assert_int_equal(arena_nchunks(&a), 1);
	assert_ptr_equal(a.chunks, first);
	assert_int_equal(a.used, 0);

	/* Also after a refused frame, and the next decode still works. */
	free(big);
	big = hostile_body(HOSTILE_EVENTS, &hostile_len);
	assert_null(frame_decode(&mux__agent_message__descriptor, big,
	    hostile_len, &a, &res));
	assert_int_equal(res, FRAME_DECODE_BUDGET);
	/* frame_decode resets first: the budget is per frame. */
	m = frame_decode(&mux__agent_message__descriptor, frame + FRAME_HDR_LEN,
	    (uint32_t)(len - FRAME_HDR_LEN), &a, &res);
	assert_int_equal(res, FRAME_DECODE_OK);
	assert_false(a.over);
	mixed_check((const Mux__AgentMessage *)m);
	assert_int_equal(arena_nchunks(&a), 1);
	assert_ptr_equal(a.chunks, first);

	frame_arena_destroy(&a);
	assert_null(a.chunks);
	free(big);
	free(fb);
	free(frame);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scan_lengths),
		cmocka_unit_test(test_scan_header_incomplete),
		cmocka_unit_test(test_scan_body_incomplete),
		cmocka_unit_test(test_scan_header_decides),
		cmocka_unit_test(test_header_and_reasons),
		cmocka_unit_test(test_ev_one_byte_at_a_time),
		cmocka_unit_test(test_ev_one_byte_chains),
		cmocka_unit_test(test_ev_header_decides),
		cmocka_unit_test(test_ev_back_to_back),
		cmocka_unit_test(test_ev_send_limit),
		cmocka_unit_test(test_roundtrip_agent_message),
		cmocka_unit_test(test_roundtrip_mux_to_agent),
		cmocka_unit_test(test_roundtrip_svm_to_mux),
		cmocka_unit_test(test_roundtrip_mux_to_svm),
		cmocka_unit_test(test_budget_refuses_empty_submessages),
		cmocka_unit_test(test_budget_allows_legit_frame),
		cmocka_unit_test(test_decode_garbage),
		cmocka_unit_test(test_arena_reuse),
	};

	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
