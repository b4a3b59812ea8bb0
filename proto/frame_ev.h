/*
 * frame_ev.h: frames over libevent evbuffers (daemon and tools).
 */
#ifndef MUX_FRAME_EV_H
#define MUX_FRAME_EV_H

#include <event2/buffer.h>

#include "frame.h"

/*
 * Look at the next frame in `in`. On FRAME_OK *body points at body_len
 * contiguous bytes that stay valid until frame_ev_consume(). The length is
 * checked before the body is pulled up, so nothing is allocated for a frame
 * that is refused.
 */
enum frame_status frame_ev_peek(struct evbuffer *in, uint32_t max_frame,
	    const uint8_t **body, uint32_t *body_len);
void	frame_ev_consume(struct evbuffer *in, uint32_t body_len);
/* Append one framed message. -1 when it is larger than max_frame. */
int	frame_ev_send(struct evbuffer *out, const ProtobufCMessage *m,
	    uint32_t max_frame);

#endif
