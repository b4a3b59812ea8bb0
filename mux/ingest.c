/*
 * ingest.c: the ingest thread. It accepts agents through vmci_shim, keeps
 * the VM table (transport CID -> identity from the VM map), and is the
 * ring's single producer: every accepted event is stamped (seq, VM, ingest
 * time), encoded once as a Delivery, and appended with ring_push_sp().
 */
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "frame.h"
#include "ingest.h"
#include "vmci_shim.h"

static void	ingest_mbox_cb(void *);

static size_t
vm_hash(uint32_t cid)
{
	return (cid * 2654435761u) % VM_HASH_SIZE;
}

/* The VmRef every delivery of this VM carries, encoded once. */
void
ingest_vm_ref(struct vm *vm)
{
	vm->ref_len = wire_vmref_encode(vm->ref, vm->cid, vm->uuid, vm->name);
}

struct vm *
ingest_vm_get(struct ingest *ing, uint32_t cid, int create)
{
	struct vm *vm;

	LIST_FOREACH(vm, &ing->vms[vm_hash(cid)], hentry)
		if (vm->cid == cid)
			return vm;
	if (!create)
		return NULL;
	if ((vm = calloc(1, sizeof(*vm))) == NULL)
		fatal("vm");
	vm->cid = cid;
	ingest_vm_ref(vm);
	LIST_INSERT_HEAD(&ing->vms[vm_hash(cid)], vm, hentry);
	return vm;
}

/*
 * VM map: one "CID UUID NAME" per line (NAME is the rest of the line);
 * blank lines and '#' comments allowed. Errors are "file:line: reason".
 */
static int
ingest_load_vm_map(struct ingest *ing, const char *path, char *err, size_t errlen)
{
	char line[512], uuid[64], *p, *end;
	unsigned long cid;
	int lineno = 0, n;
	struct vm *vm;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		for (p = line; isspace((unsigned char)*p); p++)
			;
		if (*p == '\0' || *p == '#')
			continue;
		errno = 0;
		cid = strtoul(p, &end, 10);
		if (errno != 0 || end == p || !isspace((unsigned char)*end) ||
		    cid < VMCI_CID_MIN || cid > VMCI_CID_MAX) {
			snprintf(err, errlen, "%s:%d: bad CID", path, lineno);
			fclose(f);
			return -1;
		}
		if (sscanf(end, " %63s %n", uuid, &n) != 1 || end[n] == '\0') {
			snprintf(err, errlen, "%s:%d: expected CID UUID NAME", path, lineno);
			fclose(f);
			return -1;
		}
		vm = ingest_vm_get(ing, (uint32_t)cid, 1);
		vm->mapped = 1;
		snprintf(vm->uuid, sizeof(vm->uuid), "%s", uuid);
		snprintf(vm->name, sizeof(vm->name), "%s", end + n);
		ingest_vm_ref(vm);
	}
	fclose(f);
	return 0;
}

/* Signal the fan-out thread once per read callback, not per event. */
void
ingest_flush_wake(struct ingest *ing)
{
	if (ing->pushed) {
		ing->pushed = 0;
		wake_signal(&ing->mux->ring_wake);
	}
}

/* Builds the Delivery for e around ref; returns its encoded size. */
static size_t
ingest_prepare(struct ingest *ing, struct vm *vm, uint64_t session, Mux__Event *e,
    uint64_t ingest_ns, Mux__Delivery *d, Mux__VmRef *ref)
{
	/* The producer owns head_seq: this is the seq the push will assign. */
	d->seq = atomic_load_explicit(&ing->mux->ring.head_seq, memory_order_relaxed);
	ref->cid = vm->cid;
	ref->vm_uuid = vm->uuid;
	ref->vm_name = vm->name;
	d->vm = ref;
	d->agent_session = session;
	d->event = e;
	d->ingest_time_ns = ingest_ns;
	return protobuf_c_message_get_packed_size(&d->base);
}

/* Appends the n bytes in scratch as e's record; returns its seq. */
static uint64_t
ingest_append(struct ingest *ing, struct vm *vm, const Mux__Event *e, size_t n)
{
	struct ring_meta meta;
	uint64_t seq;

	memset(&meta, 0, sizeof(meta));
	meta.cid = vm->cid;
	meta.cls = (uint8_t)wire_event_class(e);
	meta.flags = e->reply_expected ? RING_F_REPLY : 0;
	seq = ring_push_sp(&ing->mux->ring, &meta, ing->scratch, (uint32_t)n);
	METRIC_INC(metrics.received[meta.cls]);
	ing->pushed = 1;
	return seq;
}

/* Encodes and appends; returns the seq, 0 when it could not. */
static uint64_t
ingest_commit(struct ingest *ing, struct vm *vm, Mux__Event *e, Mux__Delivery *d,
    size_t n)
{
	if (n > ing->mux->ring.max_len) {
		/* Cannot happen: frames are capped below max_len. */
		log_error("cid=%u: delivery of %zu bytes exceeds the ring's record "
		    "limit; not ingested", vm->cid, n);
		return 0;
	}
	protobuf_c_message_pack(&d->base, ing->scratch);
	return ingest_append(ing, vm, e, n);
}

static uint64_t
ingest_push(struct ingest *ing, struct vm *vm, uint64_t session, Mux__Event *e,
    uint64_t ingest_ns)
{
	Mux__Delivery d = MUX__DELIVERY__INIT;
	Mux__VmRef ref = MUX__VM_REF__INIT;

	return ingest_commit(ing, vm, e, &d,
	    ingest_prepare(ing, vm, session, e, ingest_ns, &d, &ref));
}

/* Per-VM token buckets (events and bytes), one second of burst each. */
static int
ingest_bucket_take(struct ingest *ing, struct vm *vm, size_t bytes, uint64_t now)
{
	double ev_rate = ing->limits.events_per_sec;
	double b_rate = (double)ing->limits.bytes_per_sec;
	double dt;

	if (vm->bucket_ns == 0) {
		vm->ev_tokens = ev_rate;
		vm->byte_tokens = b_rate;
	} else if (now > vm->bucket_ns) {
		dt = (double)(now - vm->bucket_ns) / 1e9;
		vm->ev_tokens += dt * ev_rate;
		if (vm->ev_tokens > ev_rate)
			vm->ev_tokens = ev_rate;
		vm->byte_tokens += dt * b_rate;
		if (vm->byte_tokens > b_rate)
			vm->byte_tokens = b_rate;
	}
	vm->bucket_ns = now;
	if (vm->ev_tokens < 1.0 || vm->byte_tokens < (double)bytes)
		return 0;
	vm->ev_tokens -= 1.0;
	vm->byte_tokens -= (double)bytes;
	return 1;
}

/* EVENTS_DROPPED for vm, with what it shed since the last notice. */
static void
ingest_drop_notice(struct ingest *ing, struct vm *vm, uint64_t now)
{
	char detail[160];

	snprintf(detail, sizeof(detail), "dropped %llu events (rate %llu, "
	    "pending %llu) in %.1f s",
	    (unsigned long long)(vm->drop_rate + vm->drop_pending),
	    (unsigned long long)vm->drop_rate, (unsigned long long)vm->drop_pending,
	    vm->drop_notice_ns == 0 ? 1.0 :
	    (double)(now - vm->drop_notice_ns) / 1e9);
	vm->drop_rate = vm->drop_pending = 0;
	vm->drop_notice_ns = now;
	ingest_vm_event(ing, vm, MUX__VM_EVENT__OP__EVENTS_DROPPED, detail);
}

/* Per-VM limit exceeded: shed before a seq is taken (protocol section 6). */
static void
ingest_shed(struct ingest *ing, struct agent *a, Mux__Event *e,
    enum drop_reason why, uint64_t ingest_ns, uint64_t now)
{
	struct vm *vm = a->vm;

	METRIC_INC(metrics.dropped[why]);
	if (why == DROP_RATE)
		vm->drop_rate++;
	else
		vm->drop_pending++;
	if (e->reply_expected)
		agent_verdict(a, e->event_id, ing->default_action, "", "flood", 0,
		    ingest_ns, VSRC_DEFAULT);
	if (!vm->dropping) {
		vm->dropping = 1;
		LIST_INSERT_HEAD(&ing->dropping, vm, dentry);
		snap_alarm(&ing->mux->snap, "flood: cid=%u is shedding events (%s "
		    "limit)", vm->cid, why == DROP_RATE ? "rate" : "pending verdicts");
	}
	if (now - vm->drop_log_ns >= DROP_LOG_NS) {
		log_warnx("agent cid=%u: over its %s limit (%u events/s, %u pending "
		    "verdicts): shedding, counted in mux_events_dropped_total",
		    vm->cid, why == DROP_RATE ? "rate" : "pending-verdict",
		    ing->limits.events_per_sec, ing->limits.pending_verdicts);
		vm->drop_log_ns = now;
	}
	if (now - vm->drop_notice_ns >= DROP_NOTICE_NS)
		ingest_drop_notice(ing, vm, now);
}

static int
ingest_cid_match(const struct ingest_decider *d, uint32_t cid)
{
	size_t lo = 0, hi = d->ncids, mid;

	if (d->cids == NULL)
		return 1;
	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (d->cids[mid] == cid)
			return 1;
		if (d->cids[mid] < cid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* The deciders for an event: up, verdicts = true, subscribed to it. */
uint64_t
ingest_deciders_for(struct ingest *ing, uint32_t cid, int cls)
{
	uint64_t need = 0, m = ing->decider_mask;
	int slot;

	while (m != 0) {
		slot = __builtin_ctzll(m);
		m &= m - 1;
		if ((ing->deciders[slot].classes & (1u << cls)) != 0 &&
		    ingest_cid_match(&ing->deciders[slot], cid))
			need |= 1ull << slot;
	}
	return need;
}

int
ingest_vm_protected(struct ingest *ing, uint32_t cid)
{
	uint64_t m = ing->decider_mask;
	int slot;

	while (m != 0) {
		slot = __builtin_ctzll(m);
		m &= m - 1;
		if (ingest_cid_match(&ing->deciders[slot], cid))
			return 1;
	}
	return 0;
}

/*
 * One agent event: limits, then a seq, then its verdict obligation.
 * 0 when it took a seq or was shed; -1 when the connection closed.
 */
int
ingest_event(struct ingest *ing, struct agent *a, Mux__Event *e,
    const struct wire_field *raw, uint64_t ingest_ns, uint64_t now)
{
	Mux__Delivery d = MUX__DELIVERY__INIT;
	Mux__VmRef ref = MUX__VM_REF__INIT;
	struct vm *vm = a->vm;
	uint64_t seq, need;
	size_t n;

	/* The event's encoded size is its byte cost: shedding stays cheap. */
	if (!ingest_bucket_take(ing, vm, raw->len, now)) {
		ingest_shed(ing, a, e, DROP_RATE, ingest_ns, now);
		return a->state == AGENT_DEAD ? -1 : 0;
	}
	if (e->reply_expected && vm->pending >= ing->limits.pending_verdicts) {
		ingest_shed(ing, a, e, DROP_PENDING, ingest_ns, now);
		return a->state == AGENT_DEAD ? -1 : 0;
	}
	if (raw->data != NULL) {
		/*
		 * The agent's own bytes, spliced into the Delivery: no second
		 * encoding, and fields newer than this muxd reach the SVMs.
		 */
		seq = atomic_load_explicit(&ing->mux->ring.head_seq,
		    memory_order_relaxed);
		n = wire_delivery_encode(ing->scratch, seq, vm->ref, vm->ref_len,
		    a->session_id, raw->data, raw->len, ingest_ns);
		ingest_append(ing, vm, e, n);
	} else {
		n = ingest_prepare(ing, vm, a->session_id, e, ingest_ns, &d, &ref);
		if ((seq = ingest_commit(ing, vm, e, &d, n)) == 0)
			return 0;
	}
	if (!e->reply_expected)
		return 0;
	need = ingest_deciders_for(ing, vm->cid, (int)wire_event_class(e));
	if (need == 0 || verdict_add(ing->vt, seq, e->event_id, &a->vo, need,
	    ingest_ns, now) == -1)
		agent_verdict(a, e->event_id, ing->default_action, "", "no-solution",
		    0, ingest_ns, VSRC_DEFAULT);
	else
		ingest_arm_vt_timer(ing);
	return a->state == AGENT_DEAD ? -1 : 0;
}

/* Events the MUX makes itself: event_id 0, the host's clock, session 0. */
void
ingest_vm_event(struct ingest *ing, struct vm *vm, Mux__VmEvent__Op op,
    const char *detail)
{
	Mux__Event e = MUX__EVENT__INIT;
	Mux__VmEvent v = MUX__VM_EVENT__INIT;
	uint64_t now = now_ns();

	v.op = op;
	v.detail = (char *)detail;
	e.event_id = 0;
	e.time_ns = now;
	e.body_case = MUX__EVENT__BODY_VM;
	e.vm = &v;
	ingest_push(ing, vm, 0, &e, now);
}

struct agent *
ingest_session(struct ingest *ing, uint64_t session)
{
	struct agent *a;

	LIST_FOREACH(a, &ing->sessions[session % SESSION_HASH_SIZE], sentry)
		if (a->session_id == session)
			return a;
	return NULL;
}

/* The verdict table decided: send it to the connection the event came from. */
static void
ingest_emit(void *arg, struct verdict_owner *o, uint64_t event_id, int action,
    int slot, const char *reason, int timed_out, uint64_t ingest_ns)
{
	struct ingest *ing = arg;
	struct agent *a = (struct agent *)((char *)o - offsetof(struct agent, vo));

	if (timed_out)
		METRIC_INC(metrics.verdict_timeouts);
	agent_verdict(a, event_id, action,
	    slot >= 0 ? ing->deciders[slot].service_id : "", reason, timed_out,
	    ingest_ns, slot >= 0 ? VSRC_SVM : VSRC_DEFAULT);
}

static void
ingest_vt_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ingest *ing = arg;

	(void)fd;
	(void)ev;
	verdict_expire(ing->vt, mono_ns());
	ingest_arm_vt_timer(ing);
}

void
ingest_arm_vt_timer(struct ingest *ing)
{
	uint64_t next = verdict_next_deadline(ing->vt), now, d;
	struct timeval tv;

	if (next == 0 || evtimer_pending(ing->vt_timer, NULL))
		return;
	now = mono_ns();
	d = next > now ? next - now : 0;
	/* Rounded up: a verdict is never given by default before its time. */
	tv.tv_sec = (time_t)(d / 1000000000u);
	tv.tv_usec = (suseconds_t)((d % 1000000000u + 999) / 1000);
	evtimer_add(ing->vt_timer, &tv);
}

/* 1 s: EVENTS_DROPPED for VMs that shed since their last notice. */
static void
ingest_tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ingest *ing = arg;
	uint64_t now = mono_ns();
	struct vm *vm, *next;

	(void)fd;
	(void)ev;
	for (vm = LIST_FIRST(&ing->dropping); vm != NULL; vm = next) {
		next = LIST_NEXT(vm, dentry);
		if (vm->drop_rate + vm->drop_pending > 0) {
			if (now - vm->drop_notice_ns >= DROP_NOTICE_NS)
				ingest_drop_notice(ing, vm, now);
		} else if (now - vm->drop_notice_ns >= DROP_NOTICE_NS) {
			/* A quiet second: the episode is over. */
			vm->dropping = 0;
			LIST_REMOVE(vm, dentry);
		}
	}
	ingest_flush_wake(ing);
}

static void
ingest_decider(struct ingest *ing, const struct decider_msg *dm)
{
	struct ingest_decider *d;
	uint64_t bit;

	if (dm->slot < 0 || dm->slot >= VERDICT_SLOTS)
		return;
	d = &ing->deciders[dm->slot];
	bit = 1ull << dm->slot;
	if (!dm->up) {
		if (d->gen != dm->gen)
			return;
		d->up = 0;
		ing->decider_mask &= ~bit;
		/* Pending events it was to decide no longer wait for it. */
		verdict_lose_slot(ing->vt, dm->slot);
		ingest_arm_vt_timer(ing);
		return;
	}
	free(d->cids);
	d->cids = NULL;
	d->ncids = dm->ncids;
	if (dm->ncids > 0) {
		if ((d->cids = calloc(dm->ncids, sizeof(*d->cids))) == NULL)
			fatal("decider");
		memcpy(d->cids, dm->cids, dm->ncids * sizeof(*d->cids));
	}
	d->up = 1;
	d->gen = dm->gen;
	d->verdicts = dm->verdicts;
	d->classes = dm->classes;
	memcpy(d->service_id, dm->service_id, sizeof(d->service_id));
	if (dm->verdicts)
		ing->decider_mask |= bit;
	else
		ing->decider_mask &= ~bit;
}

static void
ingest_verdicts(struct ingest *ing, const struct verdicts_msg *vm)
{
	const struct ingest_decider *d;
	size_t i;

	if (vm->slot < 0 || vm->slot >= VERDICT_SLOTS)
		return;
	d = &ing->deciders[vm->slot];
	for (i = 0; i < vm->n; i++) {
		if (!d->up || d->gen != vm->gen ||
		    verdict_answer(ing->vt, vm->items[i].seq, vm->slot,
		    vm->items[i].action, vm->items[i].reason) == VERDICT_IGNORED)
			METRIC_INC(metrics.svm_verdicts_ignored);
	}
	ingest_arm_vt_timer(ing);
}

void
ingest_vm_status(struct ingest *ing, struct vm *vm, Mux__VmStatus__State state)
{
	struct mbox_msg *m = mbox_msg_new(MBOX_VM_STATUS, 0);

	m->cid = vm->cid;
	m->state = (int)state;
	memcpy(m->vm_uuid, vm->uuid, sizeof(m->vm_uuid));
	memcpy(m->vm_name, vm->name, sizeof(m->vm_name));
	memcpy(m->agent_version, vm->agent_version, sizeof(m->agent_version));
	memcpy(m->claimed_uuid, vm->claimed_uuid, sizeof(m->claimed_uuid));
	vm->status_sent = (int)state;
	mbox_post(&ing->mux->to_fanout, m);
}

void
ingest_publish(struct ingest *ing)
{
	struct snap_agent *arr = NULL, *s;
	struct agent *a;
	size_t n = 0;

	if (ing->nagents > 0 &&
	    (arr = calloc(ing->nagents, sizeof(*arr))) == NULL)
		return;
	TAILQ_FOREACH(a, &ing->agents, entry) {
		if (n == ing->nagents)
			break;
		s = &arr[n++];
		s->session = a->session_id;
		s->cid = a->cid;
		s->welcomed = a->state == AGENT_ACTIVE;
		s->protected = ingest_vm_protected(ing, a->cid);
		s->pending = a->vo.count;
		s->events = a->events;
		s->verdicts = a->verdicts;
		s->connected_ns = a->connected_ns;
		snprintf(s->peer, sizeof(s->peer), "%s", a->peer);
		snprintf(s->vm_uuid, sizeof(s->vm_uuid), "%s", a->vm->uuid);
		snprintf(s->vm_name, sizeof(s->vm_name), "%s", a->vm->name);
		snprintf(s->claimed_uuid, sizeof(s->claimed_uuid), "%s", a->claimed_uuid);
		snprintf(s->agent_version, sizeof(s->agent_version), "%s", a->agent_version);
		snprintf(s->os, sizeof(s->os), "%s", a->os);
	}
	snap_set_agents(&ing->mux->snap, arr, n);
}

static void
ingest_snap_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	ingest_publish(arg);
}

static void
ingest_reap_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ingest *ing = arg;
	struct agent *a;

	(void)fd;
	(void)ev;
	while ((a = TAILQ_FIRST(&ing->dead)) != NULL) {
		TAILQ_REMOVE(&ing->dead, a, entry);
		agent_free(a);
	}
	ingest_publish(ing);
}

static void
ingest_accept_cb(int fd, uint32_t cid, const char *peer, void *arg)
{
	agent_accept(arg, fd, cid, peer);
}

static void
ingest_refused_cb(const char *reason, const char *peer, void *arg)
{
	(void)arg;
	if (strcmp(reason, "cid_line") == 0)
		metrics_proto_error(LINK_AGENT, PERR_CID_LINE);
	else if (strcmp(reason, "cid_line_timeout") == 0)
		metrics_proto_error(LINK_AGENT, PERR_CID_LINE_TIMEOUT);
	else if (strcmp(reason, "cid_line_backlog") == 0)
		METRIC_INC(metrics.dropped[DROP_CONN_LIMIT]);
	log_warnx("agent %s: refused: %s", peer, reason);
}

static void
ingest_mbox_cb(void *arg)
{
	struct ingest *ing = arg;
	struct mbox_list list;
	struct mbox_msg *m;
	struct agent *a;
	struct vm *vm;

	mbox_take(&ing->mux->to_ingest, &list);
	while ((m = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, m, entry);
		switch (m->type) {
		case MBOX_SOLUTIONS:
			free(ing->solutions);
			ing->solutions = malloc(m->len);
			if (ing->solutions == NULL)
				fatal("solutions");
			memcpy(ing->solutions, m->data, m->len);
			ing->solutions_len = m->len;
			/* Full state, to every welcomed agent. */
			TAILQ_FOREACH(a, &ing->agents, entry)
				if (a->state == AGENT_ACTIVE)
					agent_send_raw(a, ing->solutions,
					    ing->solutions_len);
			break;
		case MBOX_LIMITS:
			memcpy(&ing->limits, m->data, sizeof(ing->limits));
			log_info("ingest: per-VM limits now %u events/s, %llu bytes/s, "
			    "%u pending verdicts", ing->limits.events_per_sec,
			    (unsigned long long)ing->limits.bytes_per_sec,
			    ing->limits.pending_verdicts);
			break;
		case MBOX_VM_MAP:
			vm = ingest_vm_get(ing, m->cid, 1);
			vm->mapped = 1;
			memcpy(vm->uuid, m->vm_uuid, sizeof(vm->uuid));
			memcpy(vm->name, m->vm_name, sizeof(vm->name));
			ingest_vm_ref(vm);
			/* SVMs learn the new identity of a connected VM at once. */
			if (vm->welcomed > 0)
				ingest_vm_status(ing, vm, MUX__VM_STATUS__STATE__CONNECTED);
			break;
		case MBOX_VM_EVENT:
			vm = ingest_vm_get(ing, m->cid, 1);
			ingest_vm_event(ing, vm, (Mux__VmEvent__Op)m->state, "host");
			if (m->len != 0)
				ingest_vm_status(ing, vm, (Mux__VmStatus__State)m->len);
			break;
		case MBOX_DECIDER:
			ingest_decider(ing, (const struct decider_msg *)m->data);
			break;
		case MBOX_VERDICTS:
			ingest_verdicts(ing, (const struct verdicts_msg *)m->data);
			break;
		case MBOX_SVM_REQUEST:
			relay_request(ing, (const struct svm_request *)m->data);
			break;
		default:
			log_error("ingest: unexpected mailbox message %d", m->type);
			break;
		}
		free(m);
	}
	ingest_flush_wake(ing);
}

struct ingest *
ingest_new(struct mux *mux, char *err, size_t errlen)
{
	const struct config *conf = &mux->conf;
	struct vmci_addr addr;
	struct ingest *ing;
	struct timeval tv = { 0, SNAP_PERIOD_MS * 1000 };
	char spec[160];
	size_t i;

	if ((ing = calloc(1, sizeof(*ing))) == NULL)
		fatal("ingest");
	ing->mux = mux;
	ing->conf = conf;
	TAILQ_INIT(&ing->agents);
	TAILQ_INIT(&ing->dead);
	for (i = 0; i < VM_HASH_SIZE; i++)
		LIST_INIT(&ing->vms[i]);
	for (i = 0; i < SESSION_HASH_SIZE; i++)
		LIST_INIT(&ing->sessions[i]);
	LIST_INIT(&ing->dropping);
	ing->default_action = conf->fail_closed ? MUX__ACTION__DENY : MUX__ACTION__ALLOW;
	ing->limits.events_per_sec = conf->agent_max_events_per_sec;
	ing->limits.bytes_per_sec = conf->agent_max_bytes_per_sec;
	ing->limits.pending_verdicts = conf->agent_max_pending_verdicts;
	frame_arena_init(&ing->arena);
	ing->scratch_len = mux->ring.max_len;
	ing->out_len = (size_t)conf->agent_max_frame + FRAME_HDR_LEN + DELIVERY_OVERHEAD;
	if ((ing->scratch = malloc(ing->scratch_len)) == NULL ||
	    (ing->out = malloc(ing->out_len)) == NULL)
		fatal("ingest buffers");
	if ((ing->base = event_base_new()) == NULL)
		fatalx("ingest: event_base_new failed");
	if (conf->vm_map[0] != '\0' &&
	    ingest_load_vm_map(ing, conf->vm_map, err, errlen) == -1)
		return NULL;
	if (mbox_init(&mux->to_ingest, ing->base, ingest_mbox_cb, ing) == -1)
		fatal("ingest mailbox");
	ing->reaper = event_new(ing->base, -1, 0, ingest_reap_cb, ing);
	ing->snap_timer = event_new(ing->base, -1, EV_PERSIST, ingest_snap_cb, ing);
	if (ing->reaper == NULL || ing->snap_timer == NULL)
		fatalx("ingest: events");
	evtimer_add(ing->snap_timer, &tv);
	ing->vt = verdict_table_new((uint64_t)conf->verdict_timeout_ms * 1000000u,
	    ing->default_action, ingest_emit, ing);
	ing->vt_timer = evtimer_new(ing->base, ingest_vt_timer_cb, ing);
	ing->tick = event_new(ing->base, -1, EV_PERSIST, ingest_tick_cb, ing);
	if (ing->vt == NULL || ing->vt_timer == NULL || ing->tick == NULL)
		fatalx("ingest: verdicts");
	tv.tv_sec = 1;
	tv.tv_usec = 0;
	evtimer_add(ing->tick, &tv);
	relay_init(ing);

	if (conf->transport == CONFIG_TRANSPORT_UNIX)
		snprintf(spec, sizeof(spec), "unix:%s", conf->agent_path);
	else
		snprintf(spec, sizeof(spec), "vsock:any:%u", conf->agent_port);
	if (vmci_addr_parse(spec, &addr, err, errlen) == -1)
		return NULL;
	ing->listener = vmci_listen(ing->base, &addr, ingest_accept_cb,
	    ingest_refused_cb, ing, err, errlen);
	if (ing->listener == NULL)
		return NULL;
	log_info("ingest: agents on %s (%s)", spec,
	    vmci_listener_describe(ing->listener));
	return ing;
}

static void *
ingest_main(void *arg)
{
	struct ingest *ing = arg;

	event_base_loop(ing->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int
ingest_start(struct ingest *ing)
{
	if (pthread_create(&ing->thread, NULL, ingest_main, ing) != 0)
		return -1;
	ing->running = 1;
	return 0;
}

void
ingest_stop(struct ingest *ing)
{
	if (!ing->running)
		return;
	event_base_loopbreak(ing->base);
	pthread_join(ing->thread, NULL);
	ing->running = 0;
}

void
ingest_free(struct ingest *ing)
{
	struct agent *a;
	struct vm *vm;
	size_t i;

	/* Before the agents: both point into them. */
	relay_free(ing);
	verdict_table_free(ing->vt);
	while ((a = TAILQ_FIRST(&ing->agents)) != NULL) {
		TAILQ_REMOVE(&ing->agents, a, entry);
		agent_free(a);
	}
	while ((a = TAILQ_FIRST(&ing->dead)) != NULL) {
		TAILQ_REMOVE(&ing->dead, a, entry);
		agent_free(a);
	}
	for (i = 0; i < VM_HASH_SIZE; i++)
		while ((vm = LIST_FIRST(&ing->vms[i])) != NULL) {
			LIST_REMOVE(vm, hentry);
			free(vm);
		}
	if (ing->listener != NULL)
		vmci_listener_free(ing->listener);
	for (i = 0; i < VERDICT_SLOTS; i++)
		free(ing->deciders[i].cids);
	if (ing->vt_timer != NULL)
		event_free(ing->vt_timer);
	if (ing->tick != NULL)
		event_free(ing->tick);
	mbox_free(&ing->mux->to_ingest);
	if (ing->reaper != NULL)
		event_free(ing->reaper);
	if (ing->snap_timer != NULL)
		event_free(ing->snap_timer);
	frame_arena_destroy(&ing->arena);
	free(ing->scratch);
	free(ing->slices);
	free(ing->out);
	free(ing->solutions);
	if (ing->base != NULL)
		event_base_free(ing->base);
	free(ing);
}
