/*
 * wire.c: validation of received protocol values.
 */
#include <string.h>
#include <strings.h>

#include "wire.h"

static const char *const class_names[] = {
	NULL, "file", "network", "process", "login", "vm"
};

int
wire_class_valid(int c)
{
	return c >= MUX__EVENT_CLASS__FILE && c <= MUX__EVENT_CLASS__VM;
}

const char *
wire_class_name(int c)
{
	return wire_class_valid(c) ? class_names[c] : "unspecified";
}

int
wire_class_parse(const char *s)
{
	int c;

	for (c = MUX__EVENT_CLASS__FILE; c <= MUX__EVENT_CLASS__VM; c++)
		if (strcasecmp(s, class_names[c]) == 0)
			return c;
	return -1;
}

/* "file,network" -> mask; "" or "all" -> every class. -1 on a bad name. */
int
wire_classes_parse(const char *s, wire_class_mask *mask)
{
	char buf[128], *tok, *save = NULL;
	int c;

	*mask = 0;
	if (*s == '\0' || strcasecmp(s, "all") == 0) {
		*mask = WIRE_CLASS_ALL;
		return 0;
	}
	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if ((c = wire_class_parse(tok)) < 0)
			return -1;
		*mask |= 1u << c;
	}
	if (*mask == 0)
		return -1;	/* "," names no class: refuse, not "nothing" */
	return 0;
}

/* Empty list: all classes (Register.classes). */
wire_class_mask
wire_class_mask_of(const Mux__EventClass *v, size_t n)
{
	wire_class_mask m = 0;
	size_t i;

	if (n == 0)
		return WIRE_CLASS_ALL;
	for (i = 0; i < n; i++)
		if (wire_class_valid((int)v[i]))
			m |= 1u << v[i];
	return m;
}

Mux__EventClass
wire_event_class(const Mux__Event *e)
{
	switch (e->body_case) {
	case MUX__EVENT__BODY_FILE:
		return MUX__EVENT_CLASS__FILE;
	case MUX__EVENT__BODY_NETWORK:
		return MUX__EVENT_CLASS__NETWORK;
	case MUX__EVENT__BODY_PROCESS:
		return MUX__EVENT_CLASS__PROCESS;
	case MUX__EVENT__BODY_LOGIN:
		return MUX__EVENT_CLASS__LOGIN;
	case MUX__EVENT__BODY_VM:
		return MUX__EVENT_CLASS__VM;
	default:
		return MUX__EVENT_CLASS__EVENT_CLASS_UNSPECIFIED;
	}
}

/* Protocol section 2: where reply_expected is allowed. */
int
wire_reply_allowed(const Mux__Event *e)
{
	switch (e->body_case) {
	case MUX__EVENT__BODY_FILE:
		return e->file->op == MUX__FILE_EVENT__OP__OPEN ||
		    e->file->op == MUX__FILE_EVENT__OP__CLOSE_MODIFIED ||
		    e->file->op == MUX__FILE_EVENT__OP__EXECUTE;
	case MUX__EVENT__BODY_NETWORK:
		return e->network->op == MUX__NETWORK_EVENT__OP__PRE_CONNECT;
	case MUX__EVENT__BODY_PROCESS:
		return e->process->op == MUX__PROCESS_EVENT__OP__START ||
		    e->process->op == MUX__PROCESS_EVENT__OP__SCRIPT;
	default:
		return 0;
	}
}

static int
addr_len_ok(size_t n)
{
	return n == 0 || n == 4 || n == 16;
}

/* NULL when the event is valid, else a short reason (a metric label). */
const char *
wire_event_check(const Mux__Event *e)
{
	switch (e->body_case) {
	case MUX__EVENT__BODY_FILE:
		if (e->file->op < MUX__FILE_EVENT__OP__OPEN ||
		    e->file->op > MUX__FILE_EVENT__OP__EXECUTE)
			return "bad_enum";
		break;
	case MUX__EVENT__BODY_NETWORK:
		if (e->network->op < MUX__NETWORK_EVENT__OP__PRE_CONNECT ||
		    e->network->op > MUX__NETWORK_EVENT__OP__LISTEN)
			return "bad_enum";
		if (!addr_len_ok(e->network->local_addr.len) ||
		    !addr_len_ok(e->network->remote_addr.len))
			return "bad_field";
		break;
	case MUX__EVENT__BODY_PROCESS:
		if (e->process->op < MUX__PROCESS_EVENT__OP__START ||
		    e->process->op > MUX__PROCESS_EVENT__OP__SCRIPT)
			return "bad_enum";
		if (e->process->script.len > WIRE_SCRIPT_MAX)
			return "bad_field";
		break;
	case MUX__EVENT__BODY_LOGIN:
		if (e->login->op < MUX__LOGIN_EVENT__OP__LOGON ||
		    e->login->op > MUX__LOGIN_EVENT__OP__LOGOFF)
			return "bad_enum";
		if (!addr_len_ok(e->login->addr.len))
			return "bad_field";
		break;
	case MUX__EVENT__BODY_VM:
		if (e->vm->op < MUX__VM_EVENT__OP__AGENT_CONNECTED ||
		    e->vm->op > MUX__VM_EVENT__OP__EVENTS_DROPPED)
			return "bad_enum";
		break;
	default:
		return "no_body";
	}
	if (e->reply_expected && !wire_reply_allowed(e))
		return "reply_not_allowed";
	return NULL;
}

size_t
wire_put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static int
wire_get_varint(const uint8_t *b, size_t len, size_t *off, uint64_t *v)
{
	unsigned shift = 0;

	*v = 0;
	while (*off < len && shift < 64) {
		uint8_t c = b[(*off)++];

		*v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0)
			return 0;
		shift += 7;
	}
	return -1;
}

/*
 * The next field of an encoded message at *off: 1 and *f filled, 0 at the
 * end, -1 when malformed (groups, truncation, field number 0).
 */
int
wire_field_next(const uint8_t *b, size_t len, size_t *off, struct wire_field *f)
{
	uint64_t key, n;

	if (*off >= len)
		return 0;
	if (wire_get_varint(b, len, off, &key) == -1 || (key >> 3) == 0 ||
	    (key >> 3) > 0x1fffffff)
		return -1;
	f->number = (uint32_t)(key >> 3);
	f->type = (enum wire_type)(key & 7);
	f->data = NULL;
	f->len = 0;
	switch (f->type) {
	case WIRE_T_VARINT:
		return wire_get_varint(b, len, off, &f->value) == -1 ? -1 : 1;
	case WIRE_T_LEN:
		if (wire_get_varint(b, len, off, &n) == -1 || n > len - *off)
			return -1;
		break;
	case WIRE_T_I64:
		n = 8;
		break;
	case WIRE_T_I32:
		n = 4;
		break;
	default:
		return -1;
	}
	if (n > len - *off)
		return -1;
	f->data = b + *off;
	f->len = (size_t)n;
	*off += (size_t)n;
	return 1;
}

static size_t
wire_put_bytes(uint8_t *p, uint32_t field, const void *data, size_t len)
{
	size_t n = 0;

	p[n++] = (uint8_t)WIRE_TAG(field, WIRE_T_LEN);
	n += wire_put_varint(p + n, len);
	memcpy(p + n, data, len);
	return n + len;
}

/* VmRef as protobuf-c encodes it (proto3: empty fields left out). */
size_t
wire_vmref_encode(uint8_t *p, uint32_t cid, const char *uuid, const char *name)
{
	size_t n = 0;

	if (cid != 0) {
		p[n++] = (uint8_t)WIRE_TAG(1, WIRE_T_VARINT);
		n += wire_put_varint(p + n, cid);
	}
	if (uuid[0] != '\0')
		n += wire_put_bytes(p + n, 2, uuid, strlen(uuid));
	if (name[0] != '\0')
		n += wire_put_bytes(p + n, 3, name, strlen(name));
	return n;
}

/*
 * A Delivery around an Event that is already encoded (the agent's own
 * bytes): the same bytes protobuf-c would write, without decoding and
 * re-encoding the event. buf needs event_len + vmref_len + 64 bytes.
 */
size_t
wire_delivery_encode(uint8_t *p, uint64_t seq, const uint8_t *vmref,
    size_t vmref_len, uint64_t session, const uint8_t *event, size_t event_len,
    uint64_t ingest_ns)
{
	size_t n = 0;

	if (seq != 0) {
		p[n++] = (uint8_t)WIRE_TAG(1, WIRE_T_VARINT);
		n += wire_put_varint(p + n, seq);
	}
	n += wire_put_bytes(p + n, 2, vmref, vmref_len);
	if (session != 0) {
		p[n++] = (uint8_t)WIRE_TAG(3, WIRE_T_VARINT);
		n += wire_put_varint(p + n, session);
	}
	n += wire_put_bytes(p + n, 4, event, event_len);
	if (ingest_ns != 0) {
		p[n++] = (uint8_t)WIRE_TAG(5, WIRE_T_VARINT);
		n += wire_put_varint(p + n, ingest_ns);
	}
	return n;
}
