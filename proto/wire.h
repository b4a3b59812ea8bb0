/*
 * wire.h: checks and names for protocol values, shared by muxd and the tools.
 *
 * protobuf-c keeps any integer it finds in an enum field; the protocol says
 * an *_UNSPECIFIED or unknown value is a protocol error, so every received
 * message goes through these checks before it is used.
 */
#ifndef MUX_WIRE_H
#define MUX_WIRE_H

#include <stdint.h>

#include "mux.pb-c.h"

#define WIRE_PROTOCOL_VERSION	1
#define WIRE_SCRIPT_MAX		4096		/* ProcessEvent.script */
#define WIRE_READ_MAX		(32u * 1024u)	/* ReadFileRequest.length */
#define WIRE_NCLASSES		5		/* FILE..VM */

/* Bit i+1 set for EventClass i (FILE = 1 << 1 ...). */
typedef uint32_t wire_class_mask;
#define WIRE_CLASS_ALL	((wire_class_mask)0x3e)

/* wire.c */
int		 wire_class_valid(int);
const char	*wire_class_name(int);
int		 wire_class_parse(const char *);
int		 wire_classes_parse(const char *, wire_class_mask *);
wire_class_mask	 wire_class_mask_of(const Mux__EventClass *, size_t);
Mux__EventClass	 wire_event_class(const Mux__Event *);
const char	*wire_event_check(const Mux__Event *);
int		 wire_reply_allowed(const Mux__Event *);

#endif
