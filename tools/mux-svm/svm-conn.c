/*
 * svm-conn.c: one connection from a MUX, from MuxHello to close.
 *
 *   HELLO --MuxHello/Register--> REGISTERING --Registered--> REGISTERED
 *                                     |                        |
 *                                  Reject                 batch, gap,
 *                                     v                   vm_status, ...
 *                                   close                      |
 *                                                   Ack after each batch
 *
 * FileData goes to the read engine (svm-read.c), ActionResult to the
 * policy (remediation). A close abandons the connection's file jobs at
 * once (svm_read_conn_abandon), so nothing of it runs after it.
 *
 * Anything a MUX sends that the protocol does not allow in the current
 * state, or that does not decode, is a protocol error: counted, one log
 * line, and that connection only is closed (the MUX redials).
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "frame_ev.h"
#include "svm.h"

/* Sleep owed by --process-us is paid in slices at least this long. */
#define SVM_SLEEP_SLICE_US	200
/* Timer period before MuxHello tells the heartbeat interval. */
#define SVM_TIMER_EARLY_MS	500
/* Bounds of the heartbeat check period (a quarter of the interval). */
#define SVM_TIMER_MIN_MS	10
#define SVM_TIMER_MAX_MS	1000
/* Log lines about repeated peer faults per process, then silence. */
#define SVM_LOG_REPEAT_MAX	10

static uint64_t	svm_conn_next_id;
static unsigned	svm_conn_order_logged;

static void	svm_conn_drain(struct svm_conn *, int);

/*
 * The one place that makes the transport: a TLS server bufferevent
 * (svm-tls.c), or a plain socket with --tls-off. Everything else only sees
 * a bufferevent. It owns fd, even when it fails.
 */
static struct bufferevent *
svm_conn_bev_new(int fd)
{
	struct bufferevent *bev;

	if (!svm_opt.tls_off)
		return svm_tls_bev_new(svm_base, fd);
	if ((bev = bufferevent_socket_new(svm_base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		close(fd);
	return bev;
}

static void
svm_conn_timer_arm(struct svm_conn *c)
{
	struct timeval tv;
	uint64_t ms = SVM_TIMER_EARLY_MS;

	if (c->heartbeat_ms != 0) {
		ms = c->heartbeat_ms / 4;
		if (ms < SVM_TIMER_MIN_MS)
			ms = SVM_TIMER_MIN_MS;
		if (ms > SVM_TIMER_MAX_MS)
			ms = SVM_TIMER_MAX_MS;
	}
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	event_add(c->timer_ev, &tv);
}

void
svm_conn_close(struct svm_conn *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = 1;
	svm_log("conn %" PRIu64 " %s: closed: %s", c->id, c->peer, why);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	event_del(c->drain_ev);
	event_del(c->timer_ev);
	event_del(c->ack_ev);
	svm_read_conn_abandon(c->reads);
	svm_reap_later();
}

void
svm_conn_free(struct svm_conn *c)
{
	svm_read_conn_free(c->reads);
	svm_policy_conn_free(c->policy);
	event_free(c->drain_ev);
	event_free(c->timer_ev);
	event_free(c->ack_ev);
	bufferevent_free(c->bev);
	free(c);
}

static void
svm_conn_protocol_error(struct svm_conn *c, const char *reason)
{
	char why[96];

	svm_stats.protocol_errors++;
	snprintf(why, sizeof(why), "protocol error: %s", reason);
	/* Logged even with --quiet: a protocol error is what tests hunt. */
	if (svm_opt.quiet)
		svm_warn("conn %" PRIu64 " %s: %s", c->id, c->peer, why);
	svm_conn_close(c, why);
}

static int
svm_conn_send(struct svm_conn *c, Mux__SvmToMux *m)
{
	struct evbuffer *out;

	if (c->closing)
		return -1;
	out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) > SVM_OUT_MAX) {
		svm_conn_close(c, "MUX does not read its replies");
		return -1;
	}
	if (frame_ev_send(out, &m->base, svm_opt.max_frame) != 0) {
		svm_conn_close(c, "cannot frame a reply");
		return -1;
	}
	c->last_tx_ms = svm_now_ms();
	return 0;
}

int
svm_conn_send_verdict(struct svm_conn *c, uint64_t seq, int deny,
    const char *reason)
{
	Mux__SvmToMux m = MUX__SVM_TO_MUX__INIT;
	Mux__SvmVerdict v = MUX__SVM_VERDICT__INIT;

	v.seq = seq;
	v.action = deny ? MUX__ACTION__DENY : MUX__ACTION__ALLOW;
	v.reason = (char *)reason;
	m.msg_case = MUX__SVM_TO_MUX__MSG_VERDICT;
	m.verdict = &v;
	if (svm_conn_send(c, &m) != 0)
		return -1;
	svm_stats.verdicts_sent++;
	if (deny)
		svm_stats.deny_sent++;
	return 0;
}

int
svm_conn_send_read_file(struct svm_conn *c, uint64_t request_id, uint64_t seq,
    uint64_t offset, uint32_t length)
{
	Mux__SvmToMux m = MUX__SVM_TO_MUX__INIT;
	Mux__SvmReadFile r = MUX__SVM_READ_FILE__INIT;

	r.request_id = request_id;
	r.seq = seq;
	r.offset = offset;
	r.length = length;
	m.msg_case = MUX__SVM_TO_MUX__MSG_READ_FILE;
	m.read_file = &r;
	if (svm_conn_send(c, &m) != 0)
		return -1;
	svm_stats.file_reads++;
	return 0;
}

int
svm_conn_send_remediate(struct svm_conn *c, uint64_t request_id, uint64_t seq,
    int kind)
{
	Mux__SvmToMux m = MUX__SVM_TO_MUX__INIT;
	Mux__SvmRemediate r = MUX__SVM_REMEDIATE__INIT;

	r.request_id = request_id;
	r.seq = seq;
	r.kind = (Mux__RemediationKind)kind;
	m.msg_case = MUX__SVM_TO_MUX__MSG_REMEDIATE;
	m.remediate = &r;
	if (svm_conn_send(c, &m) != 0)
		return -1;
	svm_stats.remediations_sent++;
	return 0;
}

static void
svm_conn_send_ack(struct svm_conn *c)
{
	Mux__SvmToMux m = MUX__SVM_TO_MUX__INIT;
	Mux__Ack a = MUX__ACK__INIT;

	if (c->processed <= c->acked)
		return;
	a.seq = c->processed;
	m.msg_case = MUX__SVM_TO_MUX__MSG_ACK;
	m.ack = &a;
	if (svm_conn_send(c, &m) == 0) {
		c->acked = c->processed;
		svm_stats.acks_sent++;
	}
}

static void
svm_conn_send_heartbeat(struct svm_conn *c)
{
	Mux__SvmToMux m = MUX__SVM_TO_MUX__INIT;
	Mux__Heartbeat h = MUX__HEARTBEAT__INIT;

	h.time_ns = svm_real_ns();
	m.msg_case = MUX__SVM_TO_MUX__MSG_HEARTBEAT;
	m.heartbeat = &h;
	if (svm_conn_send(c, &m) == 0)
		svm_stats.heartbeats_sent++;
}

static void
svm_conn_ack_cb(evutil_socket_t fd, short events, void *arg)
{
	svm_conn_send_ack(arg);
}

/* After a batch: at once, or --ack-delay-ms later to simulate slowness. */
static void
svm_conn_ack_later(struct svm_conn *c)
{
	struct timeval tv;

	if (svm_opt.ack_delay_ms == 0) {
		svm_conn_send_ack(c);
		return;
	}
	if (evtimer_pending(c->ack_ev, NULL))
		return;
	tv.tv_sec = (time_t)(svm_opt.ack_delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(svm_opt.ack_delay_ms % 1000) * 1000;
	evtimer_add(c->ack_ev, &tv);
}

/*
 * --process-us: the owed time is slept in slices; the loop is blocked, as
 * a busy consumer's would be. nanosleep overshoots by tens of
 * microseconds, so the overshoot is credited against the next deliveries
 * and the mean rate comes out right.
 */
static void
svm_conn_pay_sleep(struct svm_conn *c, int all)
{
	struct timespec ts;
	uint64_t start;

	if (c->sleep_debt_us <= 0 ||
	    (!all && c->sleep_debt_us < SVM_SLEEP_SLICE_US))
		return;
	ts.tv_sec = (time_t)(c->sleep_debt_us / 1000000);
	ts.tv_nsec = (long)(c->sleep_debt_us % 1000000) * 1000;
	start = svm_mono_ns();
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	c->sleep_debt_us -= (int64_t)((svm_mono_ns() - start) / 1000);
}

static void
svm_conn_on_hello(struct svm_conn *c, const Mux__MuxHello *h)
{
	Mux__SvmToMux m = MUX__SVM_TO_MUX__INIT;
	Mux__Register r = MUX__REGISTER__INIT;
	Mux__EventClass classes[WIRE_NCLASSES];
	size_t n = 0;
	int cl;

	if (h->protocol_version != WIRE_PROTOCOL_VERSION) {
		svm_warn("conn %" PRIu64 " %s: MuxHello protocol_version %u, "
		    "want %d", c->id, c->peer, h->protocol_version,
		    WIRE_PROTOCOL_VERSION);
		svm_conn_protocol_error(c, "version");
		return;
	}
	c->hello_epoch = h->epoch;
	if ((c->resume = svm_state_find(h->host_id)) == NULL)
		svm_warn("conn %" PRIu64 " %s: no resume point for host_id "
		    "\"%.64s\" (bad, or too many hosts): live starts only",
		    c->id, c->peer, h->host_id);
	c->heartbeat_ms = h->heartbeat_ms != 0 ? h->heartbeat_ms :
	    SVM_HEARTBEAT_MS_DEFAULT;
	svm_log("conn %" PRIu64 " %s: MuxHello host_id=%s mux_version=%s "
	    "epoch=%" PRIu64 " heartbeat_ms=%u", c->id, c->peer,
	    h->host_id, h->mux_version, h->epoch, h->heartbeat_ms);

	/* All five classes are sent as the empty list, which means all. */
	if (svm_opt.classes != WIRE_CLASS_ALL)
		for (cl = MUX__EVENT_CLASS__FILE; cl <= MUX__EVENT_CLASS__VM;
		    cl++)
			if (svm_opt.classes & (1u << cl))
				classes[n++] = (Mux__EventClass)cl;
	r.protocol_version = WIRE_PROTOCOL_VERSION;
	r.service_id = svm_opt.service_id;
	r.instance_id = svm_opt.instance_id;
	r.n_classes = n;
	r.classes = classes;
	r.n_vm_cids = svm_opt.ncids;
	r.vm_cids = svm_opt.cids;
	r.verdicts = svm_opt.verdicts;
	r.resume_epoch = svm_state_resume_epoch(c->resume);
	r.resume_from = svm_state_resume_from(c->resume);
	r.window = svm_opt.window;
	m.msg_case = MUX__SVM_TO_MUX__MSG_REGISTER;
	m.register_ = &r;
	if (svm_conn_send(c, &m) != 0)
		return;
	c->reg_resume_epoch = r.resume_epoch;
	c->reg_resume_from = r.resume_from;
	c->state = SVM_CONN_REGISTERING;
	c->since_ms = svm_now_ms();
	svm_conn_timer_arm(c);
}

static void
svm_conn_on_registered(struct svm_conn *c, const Mux__Registered *r)
{
	int resumed;

	if (r->epoch == 0) {
		svm_conn_protocol_error(c, "registered_epoch_zero");
		return;
	}
	if (r->epoch != c->hello_epoch) {
		svm_conn_protocol_error(c, "epoch_mismatch");
		return;
	}
	resumed = c->reg_resume_epoch == r->epoch && c->reg_resume_from != 0;
	svm_check_registered(&c->track, c->resume, r->epoch, r->next_seq,
	    c->reg_resume_epoch, c->reg_resume_from);
	svm_state_registered(c->resume, r->epoch, r->next_seq);
	svm_state_flush();
	c->state = SVM_CONN_REGISTERED;
	c->since_ms = svm_now_ms();
	svm_stats.registered++;
	svm_log("conn %" PRIu64 " %s: registered epoch=%" PRIu64
	    " next_seq=%" PRIu64 " oldest_seq=%" PRIu64 " (%s %" PRIu64 ")",
	    c->id, c->peer, r->epoch, r->next_seq, r->oldest_seq,
	    resumed ? "resuming from" : "live, resume_from was",
	    c->reg_resume_from);
}

static void
svm_conn_on_reject(struct svm_conn *c, const Mux__Reject *rj)
{
	const ProtobufCEnumValue *v;
	char why[320];

	svm_stats.rejects++;
	v = protobuf_c_enum_descriptor_get_value(&mux__reject__code__descriptor,
	    rj->code);
	snprintf(why, sizeof(why), "rejected: %s: %s",
	    v != NULL ? v->name : "unknown code", rj->reason);
	/* Logged even with --quiet, like protocol errors. */
	if (svm_opt.quiet)
		svm_warn("conn %" PRIu64 " %s: %s", c->id, c->peer, why);
	svm_conn_close(c, why);
	svm_rejected();
}

static const char *
svm_conn_batch_check(const Mux__DeliveryBatch *b)
{
	const Mux__Delivery *d;
	const char *why;
	size_t i;

	for (i = 0; i < b->n_deliveries; i++) {
		d = b->deliveries[i];
		if (d->seq == 0)
			return "delivery_seq_zero";
		if (d->event == NULL)
			return "delivery_without_event";
		if ((why = wire_event_check(d->event)) != NULL)
			return why;
	}
	return NULL;
}

static void
svm_conn_record_delivery(const Mux__Delivery *d)
{
	fprintf(svm_record, "%" PRIu64 " %u %" PRIu64 " %" PRIu64 " %s %d\n",
	    d->seq, d->vm != NULL ? d->vm->cid : 0, d->agent_session,
	    d->event->event_id, wire_class_name(wire_event_class(d->event)),
	    d->event->reply_expected ? 1 : 0);
}

static void
svm_conn_latency(const Mux__Delivery *d)
{
	uint64_t now = svm_real_ns(), us = 0;

	/* A MUX clock ahead of ours counts as zero, not as years. */
	if (now > d->ingest_time_ns)
		us = (now - d->ingest_time_ns) / 1000;
	svm_hist_add(&svm_stats.latency, us);
	svm_stats.last_latency_us = us;
}

static void
svm_conn_on_batch(struct svm_conn *c, const Mux__DeliveryBatch *b)
{
	const Mux__Delivery *d;
	const char *why;
	size_t i;
	uint64_t now;
	int redo;

	/* Checked whole first, so a bad batch is never half processed. */
	if ((why = svm_conn_batch_check(b)) != NULL) {
		svm_conn_protocol_error(c, why);
		return;
	}
	svm_stats.batches++;
	for (i = 0; i < b->n_deliveries; i++) {
		d = b->deliveries[i];
		switch (svm_check_delivery(&c->track, d->seq)) {
		case SVM_CHECK_ORDER:
			svm_stats.order_errors++;
			if (svm_conn_order_logged++ < SVM_LOG_REPEAT_MAX)
				svm_warn("conn %" PRIu64 " %s: seq %" PRIu64
				    " out of order (after %" PRIu64 ")", c->id,
				    c->peer, d->seq, c->track.hi_recv);
			continue;
		case SVM_CHECK_DUPLICATE:
			/* Decided before the reconnect: acknowledged only. */
			svm_stats.duplicates++;
			svm_state_processed(c->resume, c->track.epoch, d->seq);
			if (d->seq > c->processed)
				c->processed = d->seq;
			continue;
		case SVM_CHECK_NEW:
			break;
		}
		/* A file job a closed connection abandoned: done again. */
		redo = svm_state_is_open(c->resume, c->track.epoch, d->seq);
		if (redo)
			svm_stats.redelivered++;
		else {
			now = svm_mono_ns();
			if (svm_stats.first_rx_ns == 0)
				svm_stats.first_rx_ns = now;
			svm_stats.last_rx_ns = now;
			svm_stats.received++;
			svm_conn_latency(d);
			if (svm_record != NULL)
				svm_conn_record_delivery(d);
			if (d->event->reply_expected)
				svm_stats.reply_expected++;
		}
		/* The policy first: a file job opens its seq (svm-state.c). */
		svm_policy_delivery(c->policy, d);
		svm_state_processed(c->resume, c->track.epoch, d->seq);
		c->processed = d->seq;
		if (svm_opt.process_us != 0) {
			c->sleep_debt_us += (int64_t)svm_opt.process_us;
			svm_conn_pay_sleep(c, 0);
		}
		if (c->closing)
			return;
	}
	svm_conn_pay_sleep(c, 1);
	/* Saved before the Ack: what the MUX may free is on disk. */
	svm_state_flush();
	svm_conn_ack_later(c);
}

static void
svm_conn_on_gap(struct svm_conn *c, const Mux__Gap *g)
{
	const char *reason;
	uint64_t now;

	switch (g->reason) {
	case MUX__GAP__REASON__OVERRUN:
		if (g->first_seq == 0 || g->last_seq < g->first_seq) {
			svm_conn_protocol_error(c, "gap_bad_range");
			return;
		}
		reason = "OVERRUN";
		/* The range, not count: count may be 0 (unknown). */
		svm_stats.gap_events += g->last_seq - g->first_seq + 1;
		break;
	case MUX__GAP__REASON__EPOCH_CHANGED:
		reason = "EPOCH_CHANGED";
		svm_stats.epoch_changes++;
		break;
	default:
		svm_conn_protocol_error(c, "gap_bad_reason");
		return;
	}
	svm_stats.gaps++;
	if (svm_record != NULL)
		fprintf(svm_record, "GAP %" PRIu64 " %" PRIu64 " %s %" PRIu64
		    "\n", g->first_seq, g->last_seq, reason, g->count);
	svm_check_gap(&c->track, g);
	if (g->reason == MUX__GAP__REASON__OVERRUN) {
		/* Never coming: a resume should not ask for it again. */
		svm_state_processed(c->resume, c->track.epoch, g->last_seq);
		svm_state_flush();
	}
	/* Overload makes gaps by the thousand: one line a second at most. */
	now = svm_now_ms();
	if (c->gap_logged_ms == 0 || now - c->gap_logged_ms >= 1000) {
		c->gap_logged_ms = now;
		svm_log("conn %" PRIu64 " %s: gap %" PRIu64 "..%" PRIu64
		    " %s count=%" PRIu64, c->id, c->peer, g->first_seq,
		    g->last_seq, reason, g->count);
	}
}

static void
svm_conn_on_vm_status(struct svm_conn *c, const Mux__VmStatus *vs)
{
	if (vs->state < MUX__VM_STATUS__STATE__CONNECTED ||
	    vs->state > MUX__VM_STATUS__STATE__MIGRATED_OUT) {
		svm_conn_protocol_error(c, "vm_status_bad_state");
		return;
	}
	svm_stats.vm_status++;
	svm_vm_status(vs);
}

/* Which messages each state allows; the rest are protocol errors. */
static void
svm_conn_dispatch(struct svm_conn *c, const Mux__MuxToSvm *m)
{
	int registered = c->state == SVM_CONN_REGISTERED;

	switch (m->msg_case) {
	case MUX__MUX_TO_SVM__MSG_HELLO:
		if (c->state != SVM_CONN_HELLO)
			break;
		svm_conn_on_hello(c, m->hello);
		return;
	case MUX__MUX_TO_SVM__MSG_REGISTERED:
		if (c->state != SVM_CONN_REGISTERING)
			break;
		svm_conn_on_registered(c, m->registered);
		return;
	case MUX__MUX_TO_SVM__MSG_REJECT:
		/* A Reject may precede any close. */
		svm_conn_on_reject(c, m->reject);
		return;
	case MUX__MUX_TO_SVM__MSG_BATCH:
		if (!registered)
			break;
		svm_conn_on_batch(c, m->batch);
		return;
	case MUX__MUX_TO_SVM__MSG_GAP:
		if (!registered)
			break;
		svm_conn_on_gap(c, m->gap);
		return;
	case MUX__MUX_TO_SVM__MSG_VM_STATUS:
		if (!registered)
			break;
		svm_conn_on_vm_status(c, m->vm_status);
		return;
	case MUX__MUX_TO_SVM__MSG_FILE_DATA:
		if (!registered)
			break;
		svm_stats.file_data++;
		svm_read_file_data(c->reads, m->file_data);
		return;
	case MUX__MUX_TO_SVM__MSG_ACTION_RESULT:
		if (!registered)
			break;
		svm_stats.action_results++;
		svm_policy_action_result(c->policy, m->action_result);
		return;
	case MUX__MUX_TO_SVM__MSG_HEARTBEAT:
		if (c->state == SVM_CONN_HELLO)
			break;
		svm_stats.heartbeats_received++;
		return;
	default:
		svm_conn_protocol_error(c, "no_msg");
		return;
	}
	svm_conn_protocol_error(c, "unexpected_message");
}

/*
 * Decode and handle whole frames. With a budget it yields to the loop
 * after SVM_DRAIN_FRAMES frames or SVM_DRAIN_MS, and drain_ev resumes it:
 * the read callback does not fire again for bytes already buffered.
 */
static void
svm_conn_drain(struct svm_conn *c, int budgeted)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	enum frame_decode_result res;
	enum frame_status st;
	ProtobufCMessage *msg;
	const uint8_t *body;
	uint32_t len;
	uint64_t start = svm_now_ms();
	unsigned n = 0;

	while (!c->closing) {
		st = frame_ev_peek(in, svm_opt.max_frame, &body, &len);
		if (st == FRAME_NEED_MORE) {
			c->backlog = 0;
			return;
		}
		if (st != FRAME_OK) {
			svm_conn_protocol_error(c, frame_status_reason(st));
			return;
		}
		msg = frame_decode(&mux__mux_to_svm__descriptor, body, len,
		    &svm_arena, &res);
		if (msg == NULL) {
			svm_conn_protocol_error(c, frame_decode_reason(res));
			return;
		}
		c->last_rx_ms = svm_now_ms();
		svm_conn_dispatch(c, (const Mux__MuxToSvm *)msg);
		frame_ev_consume(in, len);
		if (budgeted && (++n >= SVM_DRAIN_FRAMES ||
		    svm_now_ms() - start >= SVM_DRAIN_MS)) {
			if (!c->closing) {
				c->backlog = 1;
				event_active(c->drain_ev, EV_TIMEOUT, 0);
			}
			return;
		}
	}
}

static void
svm_conn_drain_cb(evutil_socket_t fd, short events, void *arg)
{
	svm_conn_drain(arg, 1);
}

static void
svm_conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct svm_conn *c = arg;

	c->last_rx_ms = svm_now_ms();
	svm_conn_drain(c, 1);
}

static void
svm_conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct svm_conn *c = arg;
	char why[256];

	if (c->closing)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		/* TLS: the handshake, client certificate included, is done. */
		svm_tls_connected(c);
		return;
	}
	/* A TLS failure is counted and logged there, with its reason. */
	if (!svm_tls_failed(c, what, why, sizeof(why))) {
		if (what & BEV_EVENT_EOF)
			snprintf(why, sizeof(why), "closed by the MUX");
		else
			snprintf(why, sizeof(why), "%s",
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}
	/* What arrived before the close still counts (a Reject, a batch). */
	svm_conn_drain(c, 0);
	svm_conn_close(c, why);
}

static void
svm_conn_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct svm_conn *c = arg;
	uint64_t now = svm_now_ms();

	switch (c->state) {
	case SVM_CONN_HELLO:
	case SVM_CONN_REGISTERING:
		if (now - c->since_ms >= SVM_HELLO_TIMEOUT_MS) {
			svm_stats.timeouts++;
			svm_conn_close(c, c->state == SVM_CONN_HELLO ?
			    "no MuxHello within 10 s" :
			    "no Registered within 10 s");
		}
		return;
	case SVM_CONN_REGISTERED:
		break;
	}
	/* Whole frames we have not handled yet: our slowness, not silence. */
	if (!c->backlog && now - c->last_rx_ms >=
	    (uint64_t)SVM_SILENT_INTERVALS * c->heartbeat_ms) {
		svm_stats.timeouts++;
		svm_conn_close(c, "MUX silent for 3 heartbeat intervals");
		return;
	}
	if (now - c->last_tx_ms >= c->heartbeat_ms)
		svm_conn_send_heartbeat(c);
}

void
svm_conn_accept(int fd, const struct sockaddr *sa, int salen)
{
	char host[64], serv[32];	/* numeric: an IPv6 address fits */
	struct svm_conn *c, *other;
	size_t live = 0;
	int one = 1;

	TAILQ_FOREACH(other, &svm_conns, entry)
		if (!other->closing)
			live++;
	if (live >= SVM_CONN_MAX) {
		svm_stats.connections_refused++;
		svm_warn("refusing a connection: %d already", SVM_CONN_MAX);
		close(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		svm_warn("refusing a connection: out of memory");
		close(fd);
		return;
	}
	c->id = ++svm_conn_next_id;
	if (getnameinfo(sa, (socklen_t)salen, host, sizeof(host), serv,
	    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(c->peer, sizeof(c->peer), "%s%s%s:%s",
		    sa->sa_family == AF_INET6 ? "[" : "", host,
		    sa->sa_family == AF_INET6 ? "]" : "", serv);
	else
		snprintf(c->peer, sizeof(c->peer), "unknown");

	evutil_make_socket_nonblocking(fd);
	/* Acks and verdicts are small and someone waits for each. */
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->bev = svm_conn_bev_new(fd);
	c->drain_ev = event_new(svm_base, -1, 0, svm_conn_drain_cb, c);
	c->timer_ev = event_new(svm_base, -1, EV_PERSIST, svm_conn_timer_cb, c);
	c->ack_ev = evtimer_new(svm_base, svm_conn_ack_cb, c);
	c->policy = svm_policy_conn_new(c);
	c->reads = svm_read_conn_new(c);
	if (c->bev == NULL || c->drain_ev == NULL || c->timer_ev == NULL ||
	    c->ack_ev == NULL || c->policy == NULL || c->reads == NULL) {
		svm_warn("refusing a connection: out of memory");
		if (c->bev != NULL)
			bufferevent_free(c->bev);	/* fd too */
		if (c->drain_ev != NULL)
			event_free(c->drain_ev);
		if (c->timer_ev != NULL)
			event_free(c->timer_ev);
		if (c->ack_ev != NULL)
			event_free(c->ack_ev);
		svm_read_conn_free(c->reads);
		svm_policy_conn_free(c->policy);
		free(c);
		return;
	}
	/* Reading pauses when this much is buffered: bounded memory. */
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    (size_t)SVM_IN_FRAMES * (svm_opt.max_frame + FRAME_HDR_LEN));
	bufferevent_setcb(c->bev, svm_conn_read_cb, NULL, svm_conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);

	c->state = SVM_CONN_HELLO;
	c->since_ms = c->last_rx_ms = c->last_tx_ms = svm_now_ms();
	svm_conn_timer_arm(c);
	TAILQ_INSERT_TAIL(&svm_conns, c, entry);
	svm_stats.connections++;
	svm_log("conn %" PRIu64 " %s: accepted", c->id, c->peer);
}
