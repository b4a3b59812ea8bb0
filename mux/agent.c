/*
 * agent.c: one thin agent's connection (protocol section 3): hello and
 * welcome, event batches, heartbeats, default verdicts. Runs on the ingest
 * thread. A misbehaving agent gets one log line, a counter and its own
 * connection closed; nothing else is affected.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "frame_ev.h"
#include "ingest.h"

static void	agent_read_cb(struct bufferevent *, void *);
static void	agent_write_cb(struct bufferevent *, void *);
static void	agent_event_cb(struct bufferevent *, short, void *);
static void	agent_timer_cb(evutil_socket_t, short, void *);

static void
agent_set_peer(struct agent *a)
{
	if (a->session_id != 0)
		snprintf(a->peer, sizeof(a->peer), "agent cid=%u session=%llu",
		    a->cid, (unsigned long long)a->session_id);
	else
		snprintf(a->peer, sizeof(a->peer), "agent cid=%u", a->cid);
}

static void
agent_timer_arm(struct agent *a)
{
	uint32_t ms = a->ing->conf->heartbeat_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(a->timer, &tv);
}

/* Refuse at once (limits): a Reject, then close after it is written. */
static void
agent_refuse(struct agent *a, Mux__Reject__Code code, const char *reason)
{
	Mux__MuxToAgent m = MUX__MUX_TO_AGENT__INIT;
	Mux__Reject r = MUX__REJECT__INIT;

	r.code = code;
	r.reason = (char *)reason;
	m.msg_case = MUX__MUX_TO_AGENT__MSG_REJECT;
	m.reject = &r;
	agent_send(a, &m.base);
	a->state = AGENT_FLUSHING;
	bufferevent_disable(a->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(a->bev)) == 0)
		agent_close(a, reason);
}

void
agent_accept(struct ingest *ing, int fd, uint32_t cid, const char *peer)
{
	const struct config *conf = ing->conf;
	struct agent *a;
	struct vm *vm;

	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		close(fd);
		return;
	}
	a->ing = ing;
	a->cid = cid;
	a->last_rx = a->last_tx = mono_ns();
	a->connected_ns = now_ns();
	agent_set_peer(a);
	a->bev = bufferevent_socket_new(ing->base, fd, BEV_OPT_CLOSE_ON_FREE);
	a->timer = evtimer_new(ing->base, agent_timer_cb, a);
	if (a->bev == NULL || a->timer == NULL) {
		if (a->bev == NULL)
			close(fd);
		agent_free(a);
		return;
	}
	vm = ingest_vm_get(ing, cid, 1);
	a->vm = vm;
	verdict_owner_init(&a->vo, &vm->pending);
	TAILQ_INIT(&a->relays);
	vm->conns++;
	ing->nagents++;
	TAILQ_INSERT_TAIL(&ing->agents, a, entry);
	bufferevent_setcb(a->bev, agent_read_cb, agent_write_cb, agent_event_cb, a);
	/* Bound what one agent can make us buffer: one frame plus a header. */
	bufferevent_setwatermark(a->bev, EV_READ, 0,
	    (size_t)conf->agent_max_frame + FRAME_HDR_LEN);
	bufferevent_enable(a->bev, EV_READ | EV_WRITE);
	agent_timer_arm(a);
	log_debug("%s: connected (%s)", a->peer, peer);

	if (ing->nagents > conf->max_agents) {
		METRIC_INC(metrics.dropped[DROP_CONN_LIMIT]);
		log_warnx("%s: refused: max_agents (%u) reached", a->peer,
		    conf->max_agents);
		agent_refuse(a, MUX__REJECT__CODE__OVERLOADED, "max_agents reached");
	} else if (vm->conns > conf->agent_max_connections_per_vm) {
		METRIC_INC(metrics.dropped[DROP_CONN_LIMIT]);
		log_warnx("%s: refused: agent_max_connections_per_vm (%u) reached",
		    a->peer, conf->agent_max_connections_per_vm);
		agent_refuse(a, MUX__REJECT__CODE__OVERLOADED,
		    "agent_max_connections_per_vm reached");
	}
}

/* Mark closed and hand to the reaper; never frees inside a callback. */
void
agent_close(struct agent *a, const char *why)
{
	struct ingest *ing = a->ing;
	char detail[64];

	if (a->state == AGENT_DEAD)
		return;
	if (a->state == AGENT_ACTIVE) {
		LIST_REMOVE(a, sentry);
		/* Its obligations end with it; SVM answers for them are ignored. */
		METRIC_ADD(metrics.verdicts_orphaned, a->vo.count);
		verdict_drop_owner(ing->vt, &a->vo);
		relay_agent_gone(ing, a);
		snprintf(detail, sizeof(detail), "session=%llu",
		    (unsigned long long)a->session_id);
		ingest_vm_event(ing, a->vm, MUX__VM_EVENT__OP__AGENT_DISCONNECTED,
		    detail);
		METRIC_ADD(metrics.agents_connected, (uint64_t)-1);
		if (--a->vm->welcomed == 0)
			ingest_vm_status(ing, a->vm, MUX__VM_STATUS__STATE__DISCONNECTED);
		ingest_flush_wake(ing);
	}
	log_info("%s: closed: %s", a->peer, why);
	a->state = AGENT_DEAD;
	a->vm->conns--;
	ing->nagents--;
	bufferevent_disable(a->bev, EV_READ | EV_WRITE);
	evtimer_del(a->timer);
	TAILQ_REMOVE(&ing->agents, a, entry);
	TAILQ_INSERT_TAIL(&ing->dead, a, entry);
	event_active(ing->reaper, EV_TIMEOUT, 0);
}

void
agent_free(struct agent *a)
{
	if (a->bev != NULL)
		bufferevent_free(a->bev);
	if (a->timer != NULL)
		event_free(a->timer);
	free(a);
}

static void
agent_protocol_error(struct agent *a, enum perr p, const char *detail)
{
	char why[160];

	metrics_proto_error(LINK_AGENT, p);
	snprintf(why, sizeof(why), "protocol error: %s%s%s", metrics_perr_name(p),
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	agent_close(a, why);
}

static void
agent_check_output(struct agent *a)
{
	/* An agent that stops reading must not make us grow. */
	if (evbuffer_get_length(bufferevent_get_output(a->bev)) > AGENT_OUT_HIGH)
		agent_protocol_error(a, PERR_OUTPUT_OVERFLOW, "agent is not reading");
}

void
agent_send_raw(struct agent *a, const uint8_t *frame, size_t len)
{
	if (a->state == AGENT_DEAD)
		return;
	bufferevent_write(a->bev, frame, len);
	a->last_tx = mono_ns();
	agent_check_output(a);
}

int
agent_send(struct agent *a, const ProtobufCMessage *m)
{
	struct ingest *ing = a->ing;
	size_t n = protobuf_c_message_get_packed_size(m);

	if (n + FRAME_HDR_LEN > ing->out_len) {
		log_error("%s: outgoing message of %zu bytes too large", a->peer, n);
		return -1;
	}
	agent_send_raw(a, ing->out, frame_pack(m, ing->out));
	return 0;
}

/* Exactly once per reply_expected event, to the connection it came from. */
void
agent_verdict(struct agent *a, uint64_t event_id, int action, const char *service_id,
    const char *reason, int timed_out, uint64_t ingest_ns, enum verdict_source src)
{
	Mux__MuxToAgent m = MUX__MUX_TO_AGENT__INIT;
	Mux__Verdict v = MUX__VERDICT__INIT;
	uint64_t now = now_ns();

	v.event_id = event_id;
	v.action = (Mux__Action)action;
	v.service_id = (char *)service_id;
	v.reason = (char *)reason;
	v.timed_out = timed_out;
	m.msg_case = MUX__MUX_TO_AGENT__MSG_VERDICT;
	m.verdict = &v;
	agent_send(a, &m.base);
	a->verdicts++;
	metrics_verdict(action, src, now > ingest_ns ? now - ingest_ns : 0);
}

static int
agent_hello(struct agent *a, const Mux__AgentHello *h)
{
	struct ingest *ing = a->ing;
	const struct config *conf = ing->conf;
	Mux__MuxToAgent m = MUX__MUX_TO_AGENT__INIT;
	Mux__AgentWelcome w = MUX__AGENT_WELCOME__INIT;
	struct vm *vm = a->vm;
	char detail[64];
	size_t i;

	if (h->protocol_version != WIRE_PROTOCOL_VERSION) {
		metrics_proto_error(LINK_AGENT, PERR_VERSION);
		log_warnx("%s: protocol version %u refused (we speak %d)", a->peer,
		    h->protocol_version, WIRE_PROTOCOL_VERSION);
		snap_alarm(&ing->mux->snap, "agent cid=%u: protocol version %u refused",
		    a->cid, h->protocol_version);
		agent_refuse(a, MUX__REJECT__CODE__VERSION_MISMATCH,
		    "protocol version 1 required");
		return 0;
	}
	for (i = 0; i < h->n_capabilities; i++)
		if (!wire_class_valid((int)h->capabilities[i])) {
			agent_protocol_error(a, PERR_BAD_ENUM, "capabilities");
			return -1;
		}
	snprintf(a->agent_version, sizeof(a->agent_version), "%s", h->agent_version);
	snprintf(a->os, sizeof(a->os), "%s", h->os);
	snprintf(a->claimed_uuid, sizeof(a->claimed_uuid), "%s", h->claimed_vm_uuid);
	/* Identity is the transport's CID; the guest's claim is only checked. */
	if (vm->mapped && h->claimed_vm_uuid[0] != '\0' &&
	    strcmp(h->claimed_vm_uuid, vm->uuid) != 0) {
		METRIC_INC(metrics.identity_mismatch);
		log_warnx("agent cid=%u: claims vm_uuid %s but the VM map says %s; "
		    "keeping the mapped identity", a->cid, h->claimed_vm_uuid, vm->uuid);
		snap_alarm(&ing->mux->snap, "identity mismatch: cid=%u claims %s, "
		    "mapped %s", a->cid, h->claimed_vm_uuid, vm->uuid);
	}

	a->session_id = ++ing->next_session;
	a->state = AGENT_ACTIVE;
	LIST_INSERT_HEAD(&ing->sessions[a->session_id % SESSION_HASH_SIZE], a, sentry);
	agent_set_peer(a);
	w.protocol_version = WIRE_PROTOCOL_VERSION;
	w.session_id = a->session_id;
	w.cid = a->cid;
	w.max_frame = conf->agent_max_frame;
	w.heartbeat_ms = conf->heartbeat_ms;
	w.verdict_timeout_ms = conf->verdict_timeout_ms;
	m.msg_case = MUX__MUX_TO_AGENT__MSG_WELCOME;
	m.welcome = &w;
	agent_send(a, &m.base);
	if (ing->solutions != NULL)
		agent_send_raw(a, ing->solutions, ing->solutions_len);
	METRIC_INC(metrics.agents_connected);
	METRIC_INC(metrics.agent_sessions_total);
	log_info("%s: welcomed (agent %s, os %s, claims %s)", a->peer,
	    a->agent_version, a->os, a->claimed_uuid[0] ? a->claimed_uuid : "-");

	vm->welcomed++;
	if (vm->welcomed == 1 || strcmp(vm->agent_version, a->agent_version) != 0 ||
	    strcmp(vm->claimed_uuid, a->claimed_uuid) != 0) {
		memcpy(vm->agent_version, a->agent_version, sizeof(vm->agent_version));
		memcpy(vm->claimed_uuid, a->claimed_uuid, sizeof(vm->claimed_uuid));
		ingest_vm_status(ing, vm, MUX__VM_STATUS__STATE__CONNECTED);
	}
	snprintf(detail, sizeof(detail), "session=%llu",
	    (unsigned long long)a->session_id);
	ingest_vm_event(ing, vm, MUX__VM_EVENT__OP__AGENT_CONNECTED, detail);
	ingest_publish(ing);
	return 0;
}

static enum perr
agent_event_perr(const char *why)
{
	if (strcmp(why, "bad_enum") == 0)
		return PERR_BAD_ENUM;
	if (strcmp(why, "no_body") == 0)
		return PERR_NO_BODY;
	if (strcmp(why, "reply_not_allowed") == 0)
		return PERR_REPLY_NOT_ALLOWED;
	return PERR_BAD_FIELD;
}

/* The whole batch is checked before any event takes a seq. */
/*
 * The encoded bytes of each event of the frame, in decoding order (every
 * `events` field, merged as protobuf merges them, then each `events`
 * inside). 0 when they match the decoded batch one for one.
 */
static int
agent_event_slices(struct ingest *ing, const uint8_t *body, uint32_t len, size_t n)
{
	struct wire_field f, g;
	size_t off = 0, off2, k = 0;
	int r, r2;

	if (n > ing->nslices_max) {
		free(ing->slices);
		ing->nslices_max = n < 1024 ? 1024 : n;
		if ((ing->slices = calloc(ing->nslices_max, sizeof(*ing->slices))) == NULL)
			fatal("slices");
	}
	while ((r = wire_field_next(body, len, &off, &f)) == 1) {
		if (f.number != 2 || f.type != WIRE_T_LEN)	/* AgentMessage.events */
			continue;
		off2 = 0;
		while ((r2 = wire_field_next(f.data, f.len, &off2, &g)) == 1) {
			if (g.number != 1 || g.type != WIRE_T_LEN)	/* EventBatch.events */
				continue;
			if (k == n)
				return -1;
			ing->slices[k++] = g;
		}
		if (r2 == -1)
			return -1;
	}
	return r == -1 || k != n ? -1 : 0;
}

static int
agent_events(struct agent *a, const Mux__EventBatch *b, uint64_t ingest_ns,
    uint64_t now, const uint8_t *body, uint32_t frame_len)
{
	struct ingest *ing = a->ing;
	struct wire_field none;
	uint64_t last = a->last_event_id;
	const char *why;
	Mux__Event *e;
	size_t i;

	if (b->n_events == 0) {
		agent_protocol_error(a, PERR_BAD_FIELD, "empty EventBatch");
		return -1;
	}
	for (i = 0; i < b->n_events; i++) {
		e = b->events[i];
		if (e->event_id <= last) {
			agent_protocol_error(a, PERR_EVENT_ID_ORDER, NULL);
			return -1;
		}
		last = e->event_id;
		if ((why = wire_event_check(e)) != NULL) {
			agent_protocol_error(a, agent_event_perr(why), why);
			return -1;
		}
		/* The MUX alone makes these (protocol section 5). */
		if (e->body_case == MUX__EVENT__BODY_VM &&
		    (e->vm->op == MUX__VM_EVENT__OP__AGENT_CONNECTED ||
		    e->vm->op == MUX__VM_EVENT__OP__AGENT_DISCONNECTED ||
		    e->vm->op == MUX__VM_EVENT__OP__EVENTS_DROPPED)) {
			agent_protocol_error(a, PERR_SPOOFED_VM_EVENT, NULL);
			return -1;
		}
	}
	a->last_event_id = last;
	/* Spliced as received; re-encoded only if the bytes cannot be found
	 * one for one (they always can for a frame that decoded). */
	memset(&none, 0, sizeof(none));
	none.len = frame_len / b->n_events;
	if (agent_event_slices(ing, body, frame_len, b->n_events) == -1) {
		log_debug("%s: event bytes not found one for one; re-encoding",
		    a->peer);
		for (i = 0; i < b->n_events; i++)
			if (ingest_event(ing, a, b->events[i], &none, ingest_ns,
			    now) == -1)
				return -1;
	} else
		for (i = 0; i < b->n_events; i++)
			if (ingest_event(ing, a, b->events[i], &ing->slices[i],
			    ingest_ns, now) == -1)
				return -1;
	a->events += b->n_events;
	return 0;
}

/* -1: the connection was closed. */
static int
agent_dispatch(struct agent *a, const Mux__AgentMessage *msg, uint64_t ingest_ns,
    uint64_t now, const uint8_t *body, uint32_t frame_len)
{
	if (msg->msg_case == MUX__AGENT_MESSAGE__MSG__NOT_SET) {
		agent_protocol_error(a, PERR_NO_ONEOF, NULL);
		return -1;
	}
	if (a->state == AGENT_HELLO) {
		if (msg->msg_case != MUX__AGENT_MESSAGE__MSG_HELLO) {
			agent_protocol_error(a, PERR_UNEXPECTED, "expected hello first");
			return -1;
		}
		return agent_hello(a, msg->hello);
	}
	switch (msg->msg_case) {
	case MUX__AGENT_MESSAGE__MSG_EVENTS:
		return agent_events(a, msg->events, ingest_ns, now, body, frame_len);
	case MUX__AGENT_MESSAGE__MSG_HEARTBEAT:
		return 0;
	case MUX__AGENT_MESSAGE__MSG_FILE_DATA:
		relay_file_data(a->ing, a, msg->file_data);
		return a->state == AGENT_DEAD ? -1 : 0;
	case MUX__AGENT_MESSAGE__MSG_ACTION_RESULT:
		relay_action_result(a->ing, a, msg->action_result);
		return 0;
	default:
		agent_protocol_error(a, PERR_UNEXPECTED, "second hello");
		return -1;
	}
}

static void
agent_read_cb(struct bufferevent *bev, void *arg)
{
	struct agent *a = arg;
	struct ingest *ing = a->ing;
	struct evbuffer *in = bufferevent_get_input(bev);
	enum frame_decode_result res;
	Mux__AgentMessage *msg;
	const uint8_t *body;
	enum frame_status st;
	uint64_t ingest_ns = now_ns(), now;
	uint32_t len;

	a->last_rx = mono_ns();
	now = a->last_rx;
	while (a->state == AGENT_HELLO || a->state == AGENT_ACTIVE) {
		st = frame_ev_peek(in, ing->conf->agent_max_frame, &body, &len);
		if (st == FRAME_NEED_MORE)
			break;
		if (st != FRAME_OK) {
			agent_protocol_error(a, st == FRAME_ERR_EMPTY ?
			    PERR_EMPTY_FRAME : PERR_FRAME_TOO_BIG, NULL);
			break;
		}
		msg = (Mux__AgentMessage *)frame_decode(&mux__agent_message__descriptor,
		    body, len, &ing->arena, &res);
		if (msg == NULL) {
			agent_protocol_error(a, res == FRAME_DECODE_BUDGET ?
			    PERR_ALLOC_BUDGET : PERR_DECODE, NULL);
			break;
		}
		if (agent_dispatch(a, msg, ingest_ns, now, body, len) == -1)
			break;
		frame_ev_consume(in, len);
	}
	frame_arena_reset(&ing->arena);
	ingest_flush_wake(ing);
}

static void
agent_write_cb(struct bufferevent *bev, void *arg)
{
	struct agent *a = arg;

	if (a->state == AGENT_FLUSHING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		agent_close(a, "refused");
}

static void
agent_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent *a = arg;
	char why[96];

	(void)bev;
	if (what & BEV_EVENT_EOF)
		agent_close(a, "connection closed by agent");
	else if (what & BEV_EVENT_ERROR) {
		snprintf(why, sizeof(why), "connection error: %s", strerror(errno));
		agent_close(a, why);
	}
}

static void
agent_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct agent *a = arg;
	Mux__MuxToAgent m = MUX__MUX_TO_AGENT__INIT;
	Mux__Heartbeat hb = MUX__HEARTBEAT__INIT;
	uint64_t now = mono_ns(), hb_ns;

	(void)fd;
	(void)ev;
	hb_ns = (uint64_t)a->ing->conf->heartbeat_ms * 1000000u;
	if (a->state == AGENT_FLUSHING) {
		agent_close(a, "refused (reject not read)");
		return;
	}
	if (now - a->last_rx >= HEARTBEAT_MISSES * hb_ns) {
		agent_protocol_error(a, PERR_HEARTBEAT_TIMEOUT,
		    a->state == AGENT_HELLO ? "no hello" : "silent");
		return;
	}
	if (a->state == AGENT_ACTIVE && now - a->last_tx >= hb_ns / 2) {
		hb.time_ns = now_ns();
		m.msg_case = MUX__MUX_TO_AGENT__MSG_HEARTBEAT;
		m.heartbeat = &hb;
		agent_send(a, &m.base);
	}
	agent_timer_arm(a);
}
