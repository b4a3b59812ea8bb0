/*
 * wire.h: checks and names for protocol values, shared by muxd and the tools.
 *
 * protobuf-c keeps any integer it finds in an enum field; the protocol says
 * an *_UNSPECIFIED or unknown value is a protocol error, so every received
 * message goes through these checks before it is used.
 */
#ifndef MUX_WIRE_H
#define MUX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "mux.pb-c.h"

#define WIRE_PROTOCOL_VERSION	1
#define WIRE_SCRIPT_MAX		4096		/* ProcessEvent.script */
#define WIRE_READ_MAX		(32u * 1024u)	/* ReadFileRequest.length */
#define WIRE_NCLASSES		5		/* FILE..VM */

/* Bit i+1 set for EventClass i (FILE = 1 << 1 ...). */
typedef uint32_t wire_class_mask;
#define WIRE_CLASS_ALL	((wire_class_mask)0x3e)

/* Protobuf wire format, for the few places that splice encoded bytes. */
#define WIRE_VARINT_MAX	10
enum wire_type {
	WIRE_T_VARINT = 0,
	WIRE_T_I64 = 1,
	WIRE_T_LEN = 2,
	WIRE_T_I32 = 5,
};
#define WIRE_TAG(field, type)	((uint32_t)(field) << 3 | (uint32_t)(type))

struct wire_field {
	uint32_t	 number;
	enum wire_type	 type;
	uint64_t	 value;		/* VARINT */
	const uint8_t	*data;		/* LEN, I64, I32 */
	size_t		 len;
};

/* wire.c */
size_t		 wire_put_varint(uint8_t *, uint64_t);
int		 wire_field_next(const uint8_t *buf, size_t len, size_t *off,
		    struct wire_field *);
size_t		 wire_vmref_encode(uint8_t *, uint32_t cid, const char *uuid,
		    const char *name);
size_t		 wire_delivery_encode(uint8_t *, uint64_t seq, const uint8_t *vmref,
		    size_t vmref_len, uint64_t session, const uint8_t *event,
		    size_t event_len, uint64_t ingest_ns);
#define WIRE_VMREF_MAX	(1 + 5 + 2 + 64 + 2 + 128)
int		 wire_class_valid(int);
const char	*wire_class_name(int);
int		 wire_class_parse(const char *);
int		 wire_classes_parse(const char *, wire_class_mask *);
wire_class_mask	 wire_class_mask_of(const Mux__EventClass *, size_t);
Mux__EventClass	 wire_event_class(const Mux__Event *);
const char	*wire_event_check(const Mux__Event *);
int		 wire_reply_allowed(const Mux__Event *);

#endif
