/*
 * gen.c: what the simulated guests do, and how it goes on the wire.
 *
 * Events are built in a fixed set of slots (one per event of a frame, each
 * with its own string buffers), so the hot path allocates nothing:
 * protobuf-c packs straight from the slots into the connection's output
 * buffer. A frame is cut at --batch events or before it would pass the
 * welcome's max_frame, whichever comes first; the event that did not fit
 * opens the next frame, so event ids stay in send order.
 *
 * reply_expected is set only where the protocol allows it (section 2):
 * when an event is to expect a reply its op is drawn from the allowed ones.
 * Login events never may, so the other classes draw replies a little more
 * often and the share of all events still matches --reply-share. With
 * --reply-events N no reply is drawn beyond the N-th of the run, and
 * generation stops right after it: the run's last event is the N-th.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "frame_ev.h"
#include "loadgen.h"

#define GEN_STR_SMALL		160	/* new_path, user, cmdline base */
#define GEN_PAD_SEGMENT		64	/* padding: directories this long */

struct gen_slot {
	Mux__Event		 ev;
	Mux__FileEvent		 file;
	Mux__NetworkEvent	 net;
	Mux__ProcessEvent	 proc;
	Mux__LoginEvent		 login;
	int			 cls;
	uint64_t		 file_id;	/* for the pending entry */
	const char		*ppath;		/* process path, static */
	uint8_t			 laddr[4];
	uint8_t			 raddr[4];
	char			 user[32];
	char			 small[GEN_STR_SMALL];
	char			*big;	/* the field --payload pads */
	size_t			 bigsz;
};

struct gen_pick {
	int			 value;
	unsigned		 weight;
};

static struct gen_slot	 *gen_slots;
static struct gen_slot	**gen_order;	/* slot of the i-th event in a frame */
static Mux__Event	**gen_evs;
static uint32_t		  gen_nslots;
static unsigned		  gen_mix_total;
static double		  gen_reply_p;	/* per reply-capable event */

static const char *const gen_apps[] = {
	"/usr/bin/vim", "/usr/bin/libreoffice", "/usr/bin/python3",
	"/usr/bin/cp", "/usr/lib/firefox/firefox", "/usr/bin/evince"
};
static const char *const gen_net_apps[] = {
	"/usr/bin/curl", "/usr/lib/firefox/firefox", "/usr/bin/ssh",
	"/usr/sbin/sshd", "/usr/bin/apt", "/usr/sbin/nginx"
};
/* Whole paths, so that a pending entry can point at them. */
static const char *const gen_bins[] = {
	"/usr/bin/bash", "/usr/bin/python3", "/usr/bin/curl", "/usr/bin/ssh",
	"/usr/bin/tar", "/usr/bin/gcc", "/usr/bin/vim", "/usr/bin/firefox",
	"/usr/bin/git", "/usr/bin/make", "/usr/bin/perl", "/usr/bin/rsync",
	"/usr/bin/scp", "/usr/bin/wget", "/usr/bin/zip", "/usr/bin/node"
};
static const char gen_sh[] = "/bin/sh";
static const uint32_t gen_ports[] = { 80, 443, 22, 53, 3306, 8080 };
static const char gen_script[] = "#!/bin/sh\nfor f in /tmp/*; do "
    "echo \"$f\"; done\nrm -f /tmp/.cache-*\n";
#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

/* Reply: OPEN/CLOSE_MODIFIED/EXECUTE only. Otherwise any op. */
static const struct gen_pick gen_file_reply[] = {
	{ MUX__FILE_EVENT__OP__OPEN, 70 },
	{ MUX__FILE_EVENT__OP__CLOSE_MODIFIED, 20 },
	{ MUX__FILE_EVENT__OP__EXECUTE, 10 },
};
static const struct gen_pick gen_file_any[] = {
	{ MUX__FILE_EVENT__OP__OPEN, 35 },
	{ MUX__FILE_EVENT__OP__CLOSE, 35 },
	{ MUX__FILE_EVENT__OP__CLOSE_MODIFIED, 8 },
	{ MUX__FILE_EVENT__OP__CREATE, 8 },
	{ MUX__FILE_EVENT__OP__RENAME, 4 },
	{ MUX__FILE_EVENT__OP__DELETE, 5 },
	{ MUX__FILE_EVENT__OP__EXECUTE, 5 },
};
static const struct gen_pick gen_net_any[] = {
	{ MUX__NETWORK_EVENT__OP__PRE_CONNECT, 10 },
	{ MUX__NETWORK_EVENT__OP__CONNECT, 35 },
	{ MUX__NETWORK_EVENT__OP__ACCEPT, 15 },
	{ MUX__NETWORK_EVENT__OP__CLOSE, 35 },
	{ MUX__NETWORK_EVENT__OP__LISTEN, 5 },
};
static const struct gen_pick gen_proc_reply[] = {
	{ MUX__PROCESS_EVENT__OP__START, 85 },
	{ MUX__PROCESS_EVENT__OP__SCRIPT, 15 },
};
static const struct gen_pick gen_proc_any[] = {
	{ MUX__PROCESS_EVENT__OP__START, 45 },
	{ MUX__PROCESS_EVENT__OP__EXIT, 45 },
	{ MUX__PROCESS_EVENT__OP__SCRIPT, 10 },
};

/* splitmix64: fast, good enough for picking event shapes. */
static uint64_t
gen_rand(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static double
gen_unit(uint64_t r)
{
	return (double)(r >> 11) * 0x1p-53;
}

static int
gen_pick(const struct gen_pick *p, size_t n, uint64_t r)
{
	unsigned total = 0, x;
	size_t i;

	for (i = 0; i < n; i++)
		total += p[i].weight;
	x = (unsigned)(r % total);
	for (i = 0; i + 1 < n; i++) {
		if (x < p[i].weight)
			break;
		x -= p[i].weight;
	}
	return p[i].value;
}

static size_t
gen_varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Size of the AgentMessage{events{...}} whose EventBatch body is n bytes. */
static size_t
gen_frame_size(size_t n)
{
	return 1 + gen_varint_len(n) + n;
}

int
gen_init(char *err, size_t errlen)
{
	unsigned login_w, i;
	uint32_t n = lg_opts.batch;

	gen_mix_total = 0;
	for (i = MUX__EVENT_CLASS__FILE; i <= MUX__EVENT_CLASS__LOGIN; i++)
		gen_mix_total += lg_opts.mix[i];
	if (gen_mix_total == 0) {
		snprintf(err, errlen, "--mix: all weights are zero");
		return -1;
	}
	login_w = lg_opts.mix[MUX__EVENT_CLASS__LOGIN];
	if (lg_opts.reply_share > 0 && login_w == gen_mix_total) {
		snprintf(err, errlen, "--reply-share: login events cannot "
		    "expect a reply, and the mix has nothing else");
		return -1;
	}
	if (login_w < gen_mix_total)
		gen_reply_p = lg_opts.reply_share * gen_mix_total /
		    (gen_mix_total - login_w);
	if (gen_reply_p > 1)
		gen_reply_p = 1;

	gen_nslots = n;
	gen_slots = calloc(n, sizeof(*gen_slots));
	gen_order = calloc(n, sizeof(*gen_order));
	gen_evs = calloc(n, sizeof(*gen_evs));
	if (gen_slots == NULL || gen_order == NULL || gen_evs == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		gen_slots[i].bigsz = (size_t)lg_opts.payload + 512;
		if ((gen_slots[i].big = malloc(gen_slots[i].bigsz)) == NULL)
			goto nomem;
		gen_order[i] = &gen_slots[i];
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	gen_free();
	return -1;
}

void
gen_free(void)
{
	uint32_t i;

	for (i = 0; gen_slots != NULL && i < gen_nslots; i++)
		free(gen_slots[i].big);
	free(gen_slots);
	free(gen_order);
	free(gen_evs);
	gen_slots = NULL;
	gen_order = NULL;
	gen_evs = NULL;
}

/*
 * Grow the string in s->big by about pad bytes. Paths get directories
 * before their last component, so they still look like paths; other
 * strings get a trailing word.
 */
static void
gen_pad(struct gen_slot *s, size_t pad)
{
	char name[GEN_STR_SMALL], *slash;
	size_t len = strlen(s->big), at, seg;

	if (pad > s->bigsz - len - 1)
		pad = s->bigsz - len - 1;
	if (pad < 2)
		return;
	slash = strrchr(s->big, '/');
	if (slash == NULL || strlen(slash + 1) >= sizeof(name)) {
		s->big[len] = ' ';
		memset(s->big + len + 1, 'x', pad - 1);
		s->big[len + pad] = '\0';
		return;
	}
	strcpy(name, slash + 1);
	at = (size_t)(slash + 1 - s->big);
	while (pad >= 2) {
		seg = pad - 1 < GEN_PAD_SEGMENT ? pad - 1 : GEN_PAD_SEGMENT;
		memset(s->big + at, 'p', seg);
		s->big[at + seg] = '/';
		at += seg + 1;
		pad -= seg + 1;
	}
	strcpy(s->big + at, name);
}

static void
gen_file(struct agent *a, struct gen_slot *s, int reply, uint64_t r)
{
	Mux__FileEvent *f = &s->file;
	uint32_t user = (uint32_t)(r >> 8) % LG_USERS;
	uint32_t doc = (uint32_t)(r >> 16) % LG_DOCS;

	*f = (Mux__FileEvent)MUX__FILE_EVENT__INIT;
	if (reply)
		f->op = gen_pick(gen_file_reply, NITEMS(gen_file_reply), r >> 32);
	else
		f->op = gen_pick(gen_file_any, NITEMS(gen_file_any), r >> 32);
	if (f->op == MUX__FILE_EVENT__OP__EXECUTE) {
		f->file_id = content_bin_id(a->cid, (uint32_t)(r >> 40));
		f->process_path = (char *)"/bin/bash";
	} else {
		f->file_id = content_file_id(a->cid, user, doc);
		f->process_path = (char *)gen_apps[(r >> 48) % NITEMS(gen_apps)];
	}
	s->file_id = f->file_id;
	content_base_path(f->file_id, s->big, s->bigsz);
	f->path = s->big;
	if (f->op == MUX__FILE_EVENT__OP__RENAME) {
		snprintf(s->small, sizeof(s->small), "%s.old", s->big);
		f->new_path = s->small;
	}
	f->size = f->op == MUX__FILE_EVENT__OP__CREATE ? 0 :
	    content_size(f->file_id);
	f->pid = 1000 + (uint32_t)(r % 30000);
	snprintf(s->user, sizeof(s->user), "user%u", user);
	f->user = s->user;
	s->ev.body_case = MUX__EVENT__BODY_FILE;
	s->ev.file = f;
}

static void
gen_network(struct agent *a, struct gen_slot *s, int reply, uint64_t r)
{
	Mux__NetworkEvent *n = &s->net;
	int op;

	*n = (Mux__NetworkEvent)MUX__NETWORK_EVENT__INIT;
	op = reply ? MUX__NETWORK_EVENT__OP__PRE_CONNECT :
	    gen_pick(gen_net_any, NITEMS(gen_net_any), r >> 32);
	n->op = op;
	n->protocol = 6;	/* TCP */
	s->laddr[0] = 10;
	s->laddr[1] = 0;
	s->laddr[2] = (uint8_t)(a->cid >> 8);
	s->laddr[3] = (uint8_t)a->cid;
	s->raddr[0] = 10;
	s->raddr[1] = 0;
	s->raddr[2] = (uint8_t)(r >> 16);
	s->raddr[3] = (uint8_t)(r >> 24) | 1;
	n->local_addr.len = sizeof(s->laddr);
	n->local_addr.data = s->laddr;
	n->remote_addr.len = sizeof(s->raddr);
	n->remote_addr.data = s->raddr;
	if (op == MUX__NETWORK_EVENT__OP__LISTEN ||
	    op == MUX__NETWORK_EVENT__OP__ACCEPT) {
		n->local_port = gen_ports[(r >> 40) % NITEMS(gen_ports)];
		if (op == MUX__NETWORK_EVENT__OP__LISTEN)
			n->remote_addr.len = 0;
		else
			n->remote_port = 32768 + (uint32_t)(r % 28000);
	} else {
		n->local_port = 32768 + (uint32_t)(r % 28000);
		n->remote_port = gen_ports[(r >> 40) % NITEMS(gen_ports)];
	}
	n->pid = 1000 + (uint32_t)((r >> 8) % 30000);
	snprintf(s->big, s->bigsz, "%s",
	    gen_net_apps[(r >> 48) % NITEMS(gen_net_apps)]);
	n->process_path = s->big;
	snprintf(s->user, sizeof(s->user), "user%u", (uint32_t)(r >> 56) % 8);
	n->user = s->user;
	if (op == MUX__NETWORK_EVENT__OP__CLOSE) {
		n->bytes_in = (r >> 20) % 1000000;
		n->bytes_out = (r >> 36) % 100000;
	}
	s->ev.body_case = MUX__EVENT__BODY_NETWORK;
	s->ev.network = n;
}

static void
gen_process(struct agent *a, struct gen_slot *s, int reply, uint64_t r)
{
	Mux__ProcessEvent *p = &s->proc;
	const char *bin = gen_bins[(r >> 40) % NITEMS(gen_bins)];
	uint32_t user = (uint32_t)(r >> 8) % LG_USERS;

	*p = (Mux__ProcessEvent)MUX__PROCESS_EVENT__INIT;
	if (reply)
		p->op = gen_pick(gen_proc_reply, NITEMS(gen_proc_reply), r >> 32);
	else
		p->op = gen_pick(gen_proc_any, NITEMS(gen_proc_any), r >> 32);
	p->pid = 1000 + (uint32_t)(r % 30000);
	p->ppid = 1 + (uint32_t)((r >> 16) % 999);
	snprintf(s->user, sizeof(s->user), "user%u", user);
	p->user = s->user;
	if (p->op == MUX__PROCESS_EVENT__OP__SCRIPT) {
		p->path = (char *)gen_sh;
		snprintf(s->big, s->bigsz, "sh /home/user%u/cleanup.sh", user);
		p->script.data = (uint8_t *)gen_script;
		p->script.len = sizeof(gen_script) - 1;
		p->script_kind = (char *)"sh";
	} else {
		p->path = (char *)bin;
		snprintf(s->big, s->bigsz, "%s /home/user%u/doc%u.txt",
		    strrchr(bin, '/') + 1, user, (uint32_t)(r >> 48) % LG_DOCS);
	}
	s->ppath = p->path;
	p->cmdline = s->big;
	s->ev.body_case = MUX__EVENT__BODY_PROCESS;
	s->ev.process = p;
}

static void
gen_login(struct agent *a, struct gen_slot *s, uint64_t r)
{
	Mux__LoginEvent *l = &s->login;

	*l = (Mux__LoginEvent)MUX__LOGIN_EVENT__INIT;
	l->op = (r >> 32) & 1 ? MUX__LOGIN_EVENT__OP__LOGON :
	    MUX__LOGIN_EVENT__OP__LOGOFF;
	snprintf(s->user, sizeof(s->user), "user%u", (uint32_t)(r >> 8) % 8);
	l->user = s->user;
	snprintf(s->big, s->bigsz, "%s", (r >> 40) & 1 ? "WORKGROUP" : "CORP");
	l->domain = s->big;
	l->session = 1 + (uint32_t)((r >> 16) % 64);
	s->raddr[0] = 10;
	s->raddr[1] = 0;
	s->raddr[2] = (uint8_t)(r >> 48);
	s->raddr[3] = (uint8_t)(r >> 56) | 1;
	l->addr.len = sizeof(s->raddr);
	l->addr.data = s->raddr;
	s->ev.body_case = MUX__EVENT__BODY_LOGIN;
	s->ev.login = l;
}

/* Fill slot s with the next event of a; returns its packed size. */
static size_t
gen_fill(struct agent *a, struct gen_slot *s)
{
	uint64_t r = gen_rand(&a->rng), r2 = gen_rand(&a->rng);
	unsigned x = (unsigned)(r2 % gen_mix_total);
	int cls, reply = 0;
	size_t sz;

	for (cls = MUX__EVENT_CLASS__FILE; cls < MUX__EVENT_CLASS__LOGIN; cls++) {
		if (x < lg_opts.mix[cls])
			break;
		x -= lg_opts.mix[cls];
	}
	if (cls != MUX__EVENT_CLASS__LOGIN && gen_reply_p > 0 &&
	    gen_unit(gen_rand(&a->rng)) < gen_reply_p && !gen_quota_reached(a)) {
		/* A reply is only asked for when its verdict can be tracked. */
		if (pending_room(&a->pending) > a->reserved) {
			reply = 1;
			a->reserved++;
		} else
			lg_stats.pending_full++;
	}
	s->ev = (Mux__Event)MUX__EVENT__INIT;
	s->ev.event_id = a->next_event_id++;
	s->ev.time_ns = loadgen_realtime_ns();
	s->ev.reply_expected = reply;
	s->cls = cls;
	s->file_id = 0;
	s->ppath = NULL;
	switch (cls) {
	case MUX__EVENT_CLASS__FILE:
		gen_file(a, s, reply, r);
		break;
	case MUX__EVENT_CLASS__NETWORK:
		gen_network(a, s, reply, r);
		break;
	case MUX__EVENT_CLASS__PROCESS:
		gen_process(a, s, reply, r);
		break;
	default:
		gen_login(a, s, r);
		break;
	}
	sz = protobuf_c_message_get_packed_size(&s->ev.base);
	if (lg_opts.payload > sz) {
		gen_pad(s, lg_opts.payload - sz);
		sz = protobuf_c_message_get_packed_size(&s->ev.base);
	}
	return sz;
}

/* Queue the first n slots of gen_order as one frame. */
static void
gen_flush(struct agent *a, uint32_t n)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__EventBatch b = MUX__EVENT_BATCH__INIT;
	struct pending_ent pe;
	struct gen_slot *s;
	uint64_t now;
	uint32_t i;
	int sent;

	if (n == 0)
		return;
	for (i = 0; i < n; i++)
		gen_evs[i] = &gen_order[i]->ev;
	b.n_events = n;
	b.events = gen_evs;
	m.msg_case = MUX__AGENT_MESSAGE__MSG_EVENTS;
	m.events = &b;
	sent = agent_send(a, &m) == 0;
	now = a->last_send_ns;	/* latency counts from the frame's queueing */
	for (i = 0; i < n; i++) {
		s = gen_order[i];
		if (s->ev.reply_expected) {
			a->reserved--;
			pe.event_id = s->ev.event_id;
			pe.sent_ns = now;
			pe.cls = s->cls;
			if (s->cls == MUX__EVENT_CLASS__FILE)
				pe.what.file_id = s->file_id;
			else
				pe.what.path = s->ppath;
			/* Room was reserved in gen_fill, so this cannot fail. */
			if (sent && pending_push(&a->pending, &pe) == -1)
				lg_stats.pending_full++;
		}
		if (!sent)
			continue;
		lg_stats.sent++;
		lg_stats.sent_by_class[s->cls]++;
		a->vm->sent++;
		if (s->ev.reply_expected) {
			lg_stats.reply_expected++;
			a->vm->reply_expected++;
		}
		if (lg_record != NULL)
			fprintf(lg_record, "%u %llu %llu %s %d\n", a->cid,
			    (unsigned long long)a->session_id,
			    (unsigned long long)s->ev.event_id,
			    wire_class_name(s->cls), s->ev.reply_expected);
	}
	if (sent)
		lg_stats.frames++;
}

/*
 * --reply-events reached: counting those sent and those in the frame being
 * built (only one connection builds at a time, and it flushes before
 * returning, so no other connection holds reserved slots).
 */
int
gen_quota_reached(const struct agent *a)
{
	return lg_opts.reply_events != 0 &&
	    lg_stats.reply_expected + a->reserved >= lg_opts.reply_events;
}

/*
 * Make up to n events for a and queue them in as few frames as the limits
 * allow. Stops early once the output buffer passes LG_OUTBUF_MAX, so one
 * tick at a huge rate cannot grow it without bound, and once the
 * --reply-events quota is met. Returns how many were made.
 */
uint32_t
gen_events(struct agent *a, uint32_t n)
{
	struct evbuffer *out = bufferevent_get_output(a->bev);
	struct gen_slot *tmp;
	size_t body = 0, add, esz;
	uint32_t k = 0, i;

	for (i = 0; i < n; i++) {
		if (k == 0 && evbuffer_get_length(out) > LG_OUTBUF_MAX)
			break;
		if (gen_quota_reached(a))
			break;
		esz = gen_fill(a, gen_order[k]);
		add = 1 + gen_varint_len(esz) + esz;
		if (k > 0 && gen_frame_size(body + add) > a->max_frame) {
			gen_flush(a, k);
			tmp = gen_order[0];
			gen_order[0] = gen_order[k];
			gen_order[k] = tmp;
			k = 0;
			body = 0;
		}
		body += add;
		k++;
		if (k == gen_nslots) {
			gen_flush(a, k);
			k = 0;
			body = 0;
		}
	}
	gen_flush(a, k);
	return i;
}
