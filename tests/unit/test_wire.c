/*
 * test_wire.c: validation of received protocol values (wire.c): enums,
 * bodies, where reply_expected is allowed (protocol section 2), field
 * limits, and event class names and masks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "wire.h"

/* One Event with storage for every body kind. */
struct ev {
	Mux__Event		 e;
	Mux__FileEvent		 file;
	Mux__NetworkEvent	 net;
	Mux__ProcessEvent	 proc;
	Mux__LoginEvent		 login;
	Mux__VmEvent		 vm;
};

static void
ev_init(struct ev *x, Mux__Event__BodyCase kind, int op, int reply)
{
	Mux__Event e = MUX__EVENT__INIT;
	Mux__FileEvent f = MUX__FILE_EVENT__INIT;
	Mux__NetworkEvent n = MUX__NETWORK_EVENT__INIT;
	Mux__ProcessEvent p = MUX__PROCESS_EVENT__INIT;
	Mux__LoginEvent l = MUX__LOGIN_EVENT__INIT;
	Mux__VmEvent v = MUX__VM_EVENT__INIT;

	x->e = e;
	x->file = f;
	x->net = n;
	x->proc = p;
	x->login = l;
	x->vm = v;
	x->e.event_id = 1;
	x->e.reply_expected = reply;
	x->e.body_case = kind;
	switch (kind) {
	case MUX__EVENT__BODY_FILE:
		x->file.op = op;
		x->e.file = &x->file;
		break;
	case MUX__EVENT__BODY_NETWORK:
		x->net.op = op;
		x->e.network = &x->net;
		break;
	case MUX__EVENT__BODY_PROCESS:
		x->proc.op = op;
		x->e.process = &x->proc;
		break;
	case MUX__EVENT__BODY_LOGIN:
		x->login.op = op;
		x->e.login = &x->login;
		break;
	case MUX__EVENT__BODY_VM:
		x->vm.op = op;
		x->e.vm = &x->vm;
		break;
	default:
		break;
	}
}

/* Each body kind: its ops' valid range and which ops may expect a reply. */
static const struct kind {
	const char		*name;
	Mux__Event__BodyCase	 body;
	Mux__EventClass		 cls;
	int			 max_op;	/* ops are 1..max_op */
	int			 reply[12];	/* reply[op]: allowed */
} kinds[] = {
	{ "file", MUX__EVENT__BODY_FILE, MUX__EVENT_CLASS__FILE,
	    MUX__FILE_EVENT__OP__EXECUTE, {
		[MUX__FILE_EVENT__OP__OPEN] = 1,
		[MUX__FILE_EVENT__OP__CLOSE_MODIFIED] = 1,
		[MUX__FILE_EVENT__OP__EXECUTE] = 1 } },
	{ "network", MUX__EVENT__BODY_NETWORK, MUX__EVENT_CLASS__NETWORK,
	    MUX__NETWORK_EVENT__OP__LISTEN, {
		[MUX__NETWORK_EVENT__OP__PRE_CONNECT] = 1 } },
	{ "process", MUX__EVENT__BODY_PROCESS, MUX__EVENT_CLASS__PROCESS,
	    MUX__PROCESS_EVENT__OP__SCRIPT, {
		[MUX__PROCESS_EVENT__OP__START] = 1,
		[MUX__PROCESS_EVENT__OP__SCRIPT] = 1 } },
	{ "login", MUX__EVENT__BODY_LOGIN, MUX__EVENT_CLASS__LOGIN,
	    MUX__LOGIN_EVENT__OP__LOGOFF, { 0 } },
	{ "vm", MUX__EVENT__BODY_VM, MUX__EVENT_CLASS__VM,
	    MUX__VM_EVENT__OP__EVENTS_DROPPED, { 0 } },
};
#define NKINDS	(sizeof(kinds) / sizeof(kinds[0]))

static void
expect(const struct ev *x, const char *want, const char *what, int op)
{
	const char *got = wire_event_check(&x->e);

	if (want == NULL && got != NULL)
		fail_msg("%s op %d: got \"%s\", want valid", what, op, got);
	if (want != NULL && (got == NULL || strcmp(got, want) != 0))
		fail_msg("%s op %d: got \"%s\", want \"%s\"", what, op,
		    got == NULL ? "(valid)" : got, want);
}

/* The op ranges match the schema: the last op is the enum's last value. */
static void
test_op_ranges_match_schema(void **state)
{
	(void)state;
	assert_int_equal(kinds[0].max_op,
	    mux__file_event__op__descriptor.n_values - 1);
	assert_int_equal(kinds[1].max_op,
	    mux__network_event__op__descriptor.n_values - 1);
	assert_int_equal(kinds[2].max_op,
	    mux__process_event__op__descriptor.n_values - 1);
	assert_int_equal(kinds[3].max_op,
	    mux__login_event__op__descriptor.n_values - 1);
	assert_int_equal(kinds[4].max_op,
	    mux__vm_event__op__descriptor.n_values - 1);
}

static void
test_valid_ops(void **state)
{
	struct ev x;
	size_t k;
	int op;

	(void)state;
	for (k = 0; k < NKINDS; k++)
		for (op = 1; op <= kinds[k].max_op; op++) {
			ev_init(&x, kinds[k].body, op, 0);
			expect(&x, NULL, kinds[k].name, op);
			assert_int_equal(wire_event_class(&x.e), kinds[k].cls);
		}
}

static void
test_bad_enums(void **state)
{
	static const int bad_extra[] = { -1, -2147483647 - 1, 2147483647, 100 };
	struct ev x;
	size_t k, i;

	(void)state;
	for (k = 0; k < NKINDS; k++) {
		/* *_OP_UNSPECIFIED is never valid on the wire. */
		ev_init(&x, kinds[k].body, 0, 0);
		expect(&x, "bad_enum", kinds[k].name, 0);
		/* One past the last op, and far out of range. */
		ev_init(&x, kinds[k].body, kinds[k].max_op + 1, 0);
		expect(&x, "bad_enum", kinds[k].name, kinds[k].max_op + 1);
		for (i = 0; i < sizeof(bad_extra) / sizeof(bad_extra[0]); i++) {
			ev_init(&x, kinds[k].body, bad_extra[i], 0);
			expect(&x, "bad_enum", kinds[k].name, bad_extra[i]);
			/* A bad op is reported as such, with a reply or not. */
			ev_init(&x, kinds[k].body, bad_extra[i], 1);
			expect(&x, "bad_enum", kinds[k].name, bad_extra[i]);
		}
	}
}

static void
test_no_body(void **state)
{
	struct ev x;

	(void)state;
	ev_init(&x, MUX__EVENT__BODY__NOT_SET, 0, 0);
	expect(&x, "no_body", "none", 0);
	assert_int_equal(wire_event_class(&x.e),
	    MUX__EVENT_CLASS__EVENT_CLASS_UNSPECIFIED);
	assert_false(wire_reply_allowed(&x.e));
	ev_init(&x, MUX__EVENT__BODY__NOT_SET, 0, 1);
	expect(&x, "no_body", "none+reply", 0);
	/* A body case protobuf-c would never produce. */
	ev_init(&x, MUX__EVENT__BODY__NOT_SET, 0, 0);
	x.e.body_case = (Mux__Event__BodyCase)99;
	expect(&x, "no_body", "case 99", 0);
}

/* Protocol section 2: the exact set of (kind, op) that may block a guest. */
static void
test_reply_expected(void **state)
{
	struct ev x;
	size_t k;
	int op, allowed = 0;

	(void)state;
	for (k = 0; k < NKINDS; k++)
		for (op = 1; op <= kinds[k].max_op; op++) {
			int ok = kinds[k].reply[op];

			ev_init(&x, kinds[k].body, op, 1);
			assert_int_equal(wire_reply_allowed(&x.e), ok);
			expect(&x, ok ? NULL : "reply_not_allowed",
			    kinds[k].name, op);
			/* Without the flag every valid op passes. */
			x.e.reply_expected = 0;
			expect(&x, NULL, kinds[k].name, op);
			allowed += ok;
		}
	/* OPEN, CLOSE_MODIFIED, EXECUTE, PRE_CONNECT, START, SCRIPT. */
	assert_int_equal(allowed, 6);

	/* Spelled out once more, by name. */
	ev_init(&x, MUX__EVENT__BODY_FILE, MUX__FILE_EVENT__OP__CLOSE, 1);
	expect(&x, "reply_not_allowed", "file CLOSE", MUX__FILE_EVENT__OP__CLOSE);
	ev_init(&x, MUX__EVENT__BODY_FILE, MUX__FILE_EVENT__OP__CLOSE_MODIFIED, 1);
	expect(&x, NULL, "file CLOSE_MODIFIED", MUX__FILE_EVENT__OP__CLOSE_MODIFIED);
	ev_init(&x, MUX__EVENT__BODY_NETWORK, MUX__NETWORK_EVENT__OP__CONNECT, 1);
	expect(&x, "reply_not_allowed", "net CONNECT", MUX__NETWORK_EVENT__OP__CONNECT);
	ev_init(&x, MUX__EVENT__BODY_PROCESS, MUX__PROCESS_EVENT__OP__EXIT, 1);
	expect(&x, "reply_not_allowed", "proc EXIT", MUX__PROCESS_EVENT__OP__EXIT);
	ev_init(&x, MUX__EVENT__BODY_LOGIN, MUX__LOGIN_EVENT__OP__LOGON, 1);
	expect(&x, "reply_not_allowed", "login LOGON", MUX__LOGIN_EVENT__OP__LOGON);
	ev_init(&x, MUX__EVENT__BODY_VM, MUX__VM_EVENT__OP__AGENT_CONNECTED, 1);
	expect(&x, "reply_not_allowed", "vm AGENT_CONNECTED",
	    MUX__VM_EVENT__OP__AGENT_CONNECTED);
}

static void
test_script_limit(void **state)
{
	static uint8_t script[WIRE_SCRIPT_MAX + 2];
	struct ev x;

	(void)state;
	memset(script, 'x', sizeof(script));
	ev_init(&x, MUX__EVENT__BODY_PROCESS, MUX__PROCESS_EVENT__OP__SCRIPT, 1);
	x.proc.script.data = script;

	x.proc.script.len = 0;
	expect(&x, NULL, "script 0", 0);
	x.proc.script.len = WIRE_SCRIPT_MAX - 1;
	expect(&x, NULL, "script max-1", 0);
	x.proc.script.len = WIRE_SCRIPT_MAX;
	expect(&x, NULL, "script max", 0);
	x.proc.script.len = WIRE_SCRIPT_MAX + 1;
	expect(&x, "bad_field", "script max+1", 0);
	x.proc.script.len = WIRE_SCRIPT_MAX + 2;
	expect(&x, "bad_field", "script max+2", 0);
	/* Also when no reply is expected, and on other ops. */
	x.e.reply_expected = 0;
	x.proc.op = MUX__PROCESS_EVENT__OP__START;
	expect(&x, "bad_field", "script on START", 0);
	assert_int_equal(WIRE_SCRIPT_MAX, 4096);
}

static void
test_address_lengths(void **state)
{
	static const uint8_t addr[32];
	struct ev x;
	size_t len;

	(void)state;
	for (len = 0; len <= sizeof(addr); len++) {
		const char *want = (len == 0 || len == 4 || len == 16) ?
		    NULL : "bad_field";

		ev_init(&x, MUX__EVENT__BODY_NETWORK,
		    MUX__NETWORK_EVENT__OP__CONNECT, 0);
		x.net.local_addr.data = (uint8_t *)addr;
		x.net.local_addr.len = len;
		expect(&x, want, "local_addr", (int)len);

		ev_init(&x, MUX__EVENT__BODY_NETWORK,
		    MUX__NETWORK_EVENT__OP__CONNECT, 0);
		x.net.remote_addr.data = (uint8_t *)addr;
		x.net.remote_addr.len = len;
		expect(&x, want, "remote_addr", (int)len);

		ev_init(&x, MUX__EVENT__BODY_LOGIN, MUX__LOGIN_EVENT__OP__LOGON, 0);
		x.login.addr.data = (uint8_t *)addr;
		x.login.addr.len = len;
		expect(&x, want, "login addr", (int)len);
	}
	/* IPv4 local, IPv6 remote: fine. */
	ev_init(&x, MUX__EVENT__BODY_NETWORK, MUX__NETWORK_EVENT__OP__PRE_CONNECT, 1);
	x.net.local_addr.data = (uint8_t *)addr;
	x.net.local_addr.len = 4;
	x.net.remote_addr.data = (uint8_t *)addr;
	x.net.remote_addr.len = 16;
	expect(&x, NULL, "4/16", 0);
	/* One good, one bad. */
	x.net.remote_addr.len = 6;
	expect(&x, "bad_field", "4/6", 0);
	/* A huge length (never dereferenced). */
	x.net.remote_addr.len = (size_t)-1;
	expect(&x, "bad_field", "4/max", 0);
}

/* ---- event classes ---- */

static void
test_class_names(void **state)
{
	static const char *const names[] = {
		NULL, "file", "network", "process", "login", "vm"
	};
	int c;

	(void)state;
	assert_false(wire_class_valid(MUX__EVENT_CLASS__EVENT_CLASS_UNSPECIFIED));
	assert_false(wire_class_valid(-1));
	assert_false(wire_class_valid(MUX__EVENT_CLASS__VM + 1));
	assert_false(wire_class_valid(1000));
	assert_int_equal(WIRE_NCLASSES, MUX__EVENT_CLASS__VM);
	for (c = MUX__EVENT_CLASS__FILE; c <= MUX__EVENT_CLASS__VM; c++) {
		char upper[16];
		size_t i;

		assert_true(wire_class_valid(c));
		assert_string_equal(wire_class_name(c), names[c]);
		assert_int_equal(wire_class_parse(names[c]), c);
		/* Case does not matter. */
		for (i = 0; names[c][i] != '\0'; i++)
			upper[i] = (char)(names[c][i] - 'a' + 'A');
		upper[i] = '\0';
		assert_int_equal(wire_class_parse(upper), c);
	}
	assert_string_equal(wire_class_name(0), "unspecified");
	assert_string_equal(wire_class_name(-1), "unspecified");
	assert_string_equal(wire_class_name(6), "unspecified");
	assert_string_equal(wire_class_name(1 << 20), "unspecified");

	assert_int_equal(wire_class_parse(""), -1);
	assert_int_equal(wire_class_parse("unspecified"), -1);
	assert_int_equal(wire_class_parse("all"), -1);
	assert_int_equal(wire_class_parse("files"), -1);
	assert_int_equal(wire_class_parse("fil"), -1);
	assert_int_equal(wire_class_parse("file "), -1);
	assert_int_equal(wire_class_parse("FILE\n"), -1);
}

#define BIT(c)	((wire_class_mask)1 << (c))

static void
check_classes(const char *s, int want_rc, wire_class_mask want)
{
	wire_class_mask m = 0xdeadbeef;
	int rc = wire_classes_parse(s, &m);

	if (rc != want_rc)
		fail_msg("\"%s\": rc %d, want %d", s, rc, want_rc);
	if (want_rc == 0 && m != want)
		fail_msg("\"%s\": mask 0x%x, want 0x%x", s, m, want);
}

static void
test_classes_parse(void **state)
{
	char buf[256];

	(void)state;
	assert_int_equal(WIRE_CLASS_ALL, BIT(1) | BIT(2) | BIT(3) | BIT(4) | BIT(5));
	check_classes("file,network", 0,
	    BIT(MUX__EVENT_CLASS__FILE) | BIT(MUX__EVENT_CLASS__NETWORK));
	check_classes("file", 0, BIT(MUX__EVENT_CLASS__FILE));
	check_classes("vm,login", 0,
	    BIT(MUX__EVENT_CLASS__VM) | BIT(MUX__EVENT_CLASS__LOGIN));
	check_classes("Process,FILE", 0,
	    BIT(MUX__EVENT_CLASS__PROCESS) | BIT(MUX__EVENT_CLASS__FILE));
	check_classes("file,file", 0, BIT(MUX__EVENT_CLASS__FILE));
	check_classes("file,network,process,login,vm", 0, WIRE_CLASS_ALL);
	/* Empty or "all": every class. */
	check_classes("", 0, WIRE_CLASS_ALL);
	check_classes("all", 0, WIRE_CLASS_ALL);
	check_classes("ALL", 0, WIRE_CLASS_ALL);
	/* Bad names. */
	check_classes("bogus", -1, 0);
	check_classes("file,bogus", -1, 0);
	check_classes("bogus,file", -1, 0);
	check_classes("file,all", -1, 0);
	check_classes("unspecified", -1, 0);
	check_classes("file;network", -1, 0);
	check_classes("file, network", -1, 0);

	/* Too long: 128 characters or more, even of good names. */
	strcpy(buf, "");
	while (strlen(buf) < 115)
		strcat(buf, "file,");
	strcat(buf, "network,");
	strcat(buf, "file");
	assert_int_equal(strlen(buf), 127);
	check_classes(buf, 0,
	    BIT(MUX__EVENT_CLASS__FILE) | BIT(MUX__EVENT_CLASS__NETWORK));
	strcat(buf, ",");
	assert_int_equal(strlen(buf), 128);
	check_classes(buf, -1, 0);
	memset(buf, 'a', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	check_classes(buf, -1, 0);
}

static void
test_class_mask_of(void **state)
{
	Mux__EventClass v[8];

	(void)state;
	/* Register.classes empty: all classes. */
	assert_int_equal(wire_class_mask_of(NULL, 0), WIRE_CLASS_ALL);
	assert_int_equal(wire_class_mask_of(v, 0), WIRE_CLASS_ALL);

	v[0] = MUX__EVENT_CLASS__FILE;
	assert_int_equal(wire_class_mask_of(v, 1), BIT(MUX__EVENT_CLASS__FILE));
	v[1] = MUX__EVENT_CLASS__VM;
	assert_int_equal(wire_class_mask_of(v, 2),
	    BIT(MUX__EVENT_CLASS__FILE) | BIT(MUX__EVENT_CLASS__VM));
	v[2] = MUX__EVENT_CLASS__FILE;		/* duplicates are harmless */
	assert_int_equal(wire_class_mask_of(v, 3),
	    BIT(MUX__EVENT_CLASS__FILE) | BIT(MUX__EVENT_CLASS__VM));

	/* Values protobuf-c let through are ignored, never shifted. */
	v[0] = MUX__EVENT_CLASS__EVENT_CLASS_UNSPECIFIED;
	v[1] = (Mux__EventClass)6;
	v[2] = (Mux__EventClass)40;
	v[3] = (Mux__EventClass)-1;
	v[4] = MUX__EVENT_CLASS__NETWORK;
	assert_int_equal(wire_class_mask_of(v, 5), BIT(MUX__EVENT_CLASS__NETWORK));

	v[0] = MUX__EVENT_CLASS__FILE;
	v[1] = MUX__EVENT_CLASS__NETWORK;
	v[2] = MUX__EVENT_CLASS__PROCESS;
	v[3] = MUX__EVENT_CLASS__LOGIN;
	v[4] = MUX__EVENT_CLASS__VM;
	assert_int_equal(wire_class_mask_of(v, 5), WIRE_CLASS_ALL);

	/* The mask agrees with wire_event_class for every body kind. */
	{
		struct ev x;
		size_t k;

		for (k = 0; k < NKINDS; k++) {
			ev_init(&x, kinds[k].body, 1, 0);
			v[0] = wire_event_class(&x.e);
			assert_int_equal(wire_class_mask_of(v, 1), BIT(kinds[k].cls));
			assert_true(wire_class_mask_of(v, 1) & WIRE_CLASS_ALL);
		}
	}
}

/* The spliced Delivery is byte for byte what protobuf-c writes. */
static void
test_delivery_encode_matches_protobuf_c(void **state)
{
	Mux__Event ev = MUX__EVENT__INIT;
	Mux__FileEvent f = MUX__FILE_EVENT__INIT;
	Mux__Delivery d = MUX__DELIVERY__INIT;
	Mux__VmRef ref = MUX__VM_REF__INIT;
	uint8_t evbuf[512], ours[1024], theirs[1024], refbuf[WIRE_VMREF_MAX];
	size_t evlen, reflen, n, m;
	const char *uuids[] = { "", "4c4c4544-0000-0000-0000-000000000077" };
	const char *names[] = { "", "web server 7" };
	uint64_t sessions[] = { 0, 1, 300, UINT64_MAX };
	int u, k, s;

	(void)state;
	f.op = MUX__FILE_EVENT__OP__OPEN;
	f.path = (char *)"/home/user1/doc1.txt";
	f.file_id = 77;
	ev.event_id = 12345;
	ev.time_ns = 1700000000000000000ull;
	ev.reply_expected = 1;
	ev.body_case = MUX__EVENT__BODY_FILE;
	ev.file = &f;
	evlen = mux__event__pack(&ev, evbuf);
	for (u = 0; u < 2; u++)
		for (k = 0; k < 2; k++)
			for (s = 0; s < 4; s++) {
				ref.cid = 77;
				ref.vm_uuid = (char *)uuids[u];
				ref.vm_name = (char *)names[k];
				d.seq = 1000 + (uint64_t)s;
				d.vm = &ref;
				d.agent_session = sessions[s];
				d.event = &ev;
				d.ingest_time_ns = 1700000000123456789ull;
				m = mux__delivery__pack(&d, theirs);
				reflen = wire_vmref_encode(refbuf, 77, uuids[u], names[k]);
				n = wire_delivery_encode(ours, d.seq, refbuf, reflen,
				    sessions[s], evbuf, evlen, d.ingest_time_ns);
				assert_int_equal(n, m);
				assert_memory_equal(ours, theirs, n);
			}
}

/* Walking fields: each kind, and truncations refused. */
static void
test_field_next(void **state)
{
	uint8_t b[64];
	struct wire_field f;
	size_t n = 0, off = 0, i;

	(void)state;
	b[n++] = WIRE_TAG(1, WIRE_T_VARINT);
	n += wire_put_varint(b + n, 300);
	b[n++] = WIRE_TAG(2, WIRE_T_LEN);
	b[n++] = 3;
	b[n++] = 'a'; b[n++] = 'b'; b[n++] = 'c';
	b[n++] = WIRE_TAG(3, WIRE_T_I32);
	memset(b + n, 1, 4);
	n += 4;
	assert_int_equal(wire_field_next(b, n, &off, &f), 1);
	assert_int_equal(f.number, 1);
	assert_int_equal(f.value, 300);
	assert_int_equal(wire_field_next(b, n, &off, &f), 1);
	assert_int_equal(f.number, 2);
	assert_int_equal(f.len, 3);
	assert_memory_equal(f.data, "abc", 3);
	assert_int_equal(wire_field_next(b, n, &off, &f), 1);
	assert_int_equal(f.type, WIRE_T_I32);
	assert_int_equal(wire_field_next(b, n, &off, &f), 0);
	/* Every truncation of a frame that ends mid-field is refused. */
	for (i = 1; i < n; i++) {
		size_t o = 0;
		int r;

		while ((r = wire_field_next(b, i, &o, &f)) == 1)
			;
		if (i != 3 && i != 8)	/* cuts between whole fields */
			assert_int_equal(r, -1);
	}
	/* A group (wire type 3) and field number 0 are refused. */
	b[0] = WIRE_TAG(1, 3);
	off = 0;
	assert_int_equal(wire_field_next(b, n, &off, &f), -1);
	b[0] = 0;
	off = 0;
	assert_int_equal(wire_field_next(b, n, &off, &f), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delivery_encode_matches_protobuf_c),
		cmocka_unit_test(test_field_next),
		cmocka_unit_test(test_op_ranges_match_schema),
		cmocka_unit_test(test_valid_ops),
		cmocka_unit_test(test_bad_enums),
		cmocka_unit_test(test_no_body),
		cmocka_unit_test(test_reply_expected),
		cmocka_unit_test(test_script_limit),
		cmocka_unit_test(test_address_lengths),
		cmocka_unit_test(test_class_names),
		cmocka_unit_test(test_classes_parse),
		cmocka_unit_test(test_class_mask_of),
	};

	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
