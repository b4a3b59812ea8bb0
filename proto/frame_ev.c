/*
 * frame_ev.c: frames over libevent evbuffers.
 */
#include "frame_ev.h"

enum frame_status
frame_ev_peek(struct evbuffer *in, uint32_t max_frame, const uint8_t **body,
    uint32_t *body_len)
{
	uint8_t hdr[FRAME_HDR_LEN];
	size_t have = evbuffer_get_length(in);
	enum frame_status st;
	const uint8_t *p;

	if (have < FRAME_HDR_LEN)
		return FRAME_NEED_MORE;
	evbuffer_copyout(in, hdr, sizeof(hdr));
	st = frame_scan(hdr, sizeof(hdr), max_frame, body_len);
	if (st != FRAME_NEED_MORE)
		return st;		/* an error: the header alone decides */
	if (have - FRAME_HDR_LEN < *body_len)
		return FRAME_NEED_MORE;
	p = evbuffer_pullup(in, (ev_ssize_t)(FRAME_HDR_LEN + *body_len));
	if (p == NULL)
		return FRAME_NEED_MORE;
	*body = p + FRAME_HDR_LEN;
	return FRAME_OK;
}

void
frame_ev_consume(struct evbuffer *in, uint32_t body_len)
{
	evbuffer_drain(in, FRAME_HDR_LEN + (size_t)body_len);
}

int
frame_ev_send(struct evbuffer *out, const ProtobufCMessage *m, uint32_t max_frame)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	struct evbuffer_iovec iov;

	if (n == 0 || n > max_frame)
		return -1;
	if (evbuffer_reserve_space(out, (ev_ssize_t)(n + FRAME_HDR_LEN), &iov, 1) < 1)
		return -1;
	iov.iov_len = frame_pack(m, iov.iov_base);
	return evbuffer_commit_space(out, &iov, 1);
}
