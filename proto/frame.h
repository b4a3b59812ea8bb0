/*
 * frame.h: the framing codec shared by muxd and the tools.
 *
 * Both links carry frames of
 *
 *   +----------------------+-------------------------------+
 *   | length: uint32, BE,  | one protobuf message of       |
 *   | 1..max_frame         | exactly `length` bytes        |
 *   +----------------------+-------------------------------+
 *
 * The length is checked against max_frame before a byte of the body is
 * buffered beyond the socket's read size, and decoding goes through an arena
 * allocator with a per-frame budget, so a small hostile frame cannot make
 * the parser allocate megabytes (many empty repeated sub-messages would).
 */
#ifndef MUX_FRAME_H
#define MUX_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#define FRAME_HDR_LEN		4
/* Defaults of the protocol (section 1); both are configurable. */
#define FRAME_AGENT_MAX_DEFAULT	(64u * 1024u)
#define FRAME_SVM_MAX_DEFAULT	(4u * 1024u * 1024u)
/*
 * Decode budget: a frame may make the parser allocate at most
 * FRAME_BUDGET_FACTOR times its own size plus FRAME_BUDGET_SLACK. Legitimate
 * messages need about 3x (strings are copied, structs are larger than their
 * encoding); 2-byte empty sub-messages would need ~50x and are refused.
 */
#define FRAME_BUDGET_FACTOR	8u
#define FRAME_BUDGET_SLACK	(16u * 1024u)

enum frame_status {
	FRAME_NEED_MORE = 0,	/* header or body incomplete: keep buffering */
	FRAME_OK,		/* a whole frame: body_len bytes after the header */
	FRAME_ERR_EMPTY,	/* length 0 */
	FRAME_ERR_TOO_BIG,	/* length above max_frame */
};

enum frame_decode_result {
	FRAME_DECODE_OK = 0,
	FRAME_DECODE_BAD,	/* does not decode */
	FRAME_DECODE_BUDGET,	/* would allocate more than the budget */
};

/* Bump allocator handed to protobuf-c; freed wholesale by frame_arena_reset. */
struct frame_arena_chunk;
struct frame_arena {
	ProtobufCAllocator	 allocator;
	struct frame_arena_chunk *chunks;	/* newest first */
	size_t			 used;		/* bytes handed out this frame */
	size_t			 budget;	/* limit for the current frame */
	int			 over;		/* budget was hit */
};

/* frame.c */
enum frame_status frame_scan(const uint8_t *buf, size_t len, uint32_t max_frame,
	    uint32_t *body_len);
void	frame_put_header(uint8_t out[FRAME_HDR_LEN], uint32_t body_len);
size_t	frame_budget(uint32_t body_len);
void	frame_arena_init(struct frame_arena *);
void	frame_arena_reset(struct frame_arena *);
void	frame_arena_destroy(struct frame_arena *);
ProtobufCMessage *frame_decode(const ProtobufCMessageDescriptor *,
	    const uint8_t *body, uint32_t body_len, struct frame_arena *,
	    enum frame_decode_result *);
const char *frame_status_reason(enum frame_status);
const char *frame_decode_reason(enum frame_decode_result);
/* Encode header + message into buf (size >= 4 + packed size). */
size_t	frame_pack(const ProtobufCMessage *, uint8_t *buf);

#endif
