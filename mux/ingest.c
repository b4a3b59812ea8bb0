/*
 * ingest.c: the ingest thread. It accepts agents through vmci_shim, keeps
 * the VM table (transport CID -> identity from the VM map), and is the
 * ring's single producer: every accepted event is stamped (seq, VM, ingest
 * time), encoded once as a Delivery, and appended with ring_push_sp().
 */
#include <ctype.h>
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

static uint64_t
ingest_push(struct ingest *ing, struct vm *vm, uint64_t session, Mux__Event *e,
    uint64_t ingest_ns)
{
	Mux__Delivery d = MUX__DELIVERY__INIT;
	Mux__VmRef ref = MUX__VM_REF__INIT;
	struct ring_meta meta;
	size_t n;

	/* The producer owns head_seq: this is the seq the push assigns. */
	d.seq = atomic_load_explicit(&ing->mux->ring.head_seq, memory_order_relaxed);
	ref.cid = vm->cid;
	ref.vm_uuid = vm->uuid;
	ref.vm_name = vm->name;
	d.vm = &ref;
	d.agent_session = session;
	d.event = e;
	d.ingest_time_ns = ingest_ns;
	n = protobuf_c_message_get_packed_size(&d.base);
	if (n > ing->mux->ring.max_len) {
		/* Cannot happen: frames are capped below max_len. */
		log_error("cid=%u: delivery of %zu bytes exceeds the ring's record "
		    "limit; not ingested", vm->cid, n);
		return 0;
	}
	protobuf_c_message_pack(&d.base, ing->scratch);
	memset(&meta, 0, sizeof(meta));
	meta.cid = vm->cid;
	meta.cls = (uint8_t)wire_event_class(e);
	meta.flags = e->reply_expected ? RING_F_REPLY : 0;
	ring_push_sp(&ing->mux->ring, &meta, ing->scratch, (uint32_t)n);
	METRIC_INC(metrics.received[meta.cls]);
	ing->pushed = 1;
	return d.seq;
}

/* 0 when the event took a seq. */
int
ingest_event(struct ingest *ing, struct agent *a, Mux__Event *e, uint64_t ingest_ns)
{
	return ingest_push(ing, a->vm, a->session_id, e, ingest_ns) != 0 ? 0 : -1;
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
		default:
			log_error("ingest: unexpected mailbox message %d", m->type);
			break;
		}
		free(m);
	}
}

struct event_base *
ingest_base(struct ingest *ing)
{
	return ing->base;
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
	log_info("ingest: agents on %s (%s backend)", spec,
	    vmci_backend_name(addr.backend));
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
	mbox_free(&ing->mux->to_ingest);
	if (ing->reaper != NULL)
		event_free(ing->reaper);
	if (ing->snap_timer != NULL)
		event_free(ing->snap_timer);
	frame_arena_destroy(&ing->arena);
	free(ing->scratch);
	free(ing->out);
	free(ing->solutions);
	if (ing->base != NULL)
		event_base_free(ing->base);
	free(ing);
}
