/*
 * svm.c: one SVM session (protocol section 4) on the fan-out thread:
 * dial with capped exponential backoff, MuxHello, Register, Registered,
 * resume, VmStatus, batched deliveries under a window, cumulative acks,
 * Gap on overrun (or disconnect, by slow_svm), heartbeats.
 *
 * The socket is a bufferevent so that TLS (bufferevent_openssl) slots in
 * under it without touching the protocol code.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "fanout.h"
#include "frame_ev.h"

#define SVM_CONNECT_TIMEOUT_MS	5000
#define SVM_GAP_LOG_EVERY_NS	(10ull * 1000000000ull)

static void	svm_read_cb(struct bufferevent *, void *);
static void	svm_write_cb(struct bufferevent *, void *);
static void	svm_event_cb(struct bufferevent *, short, void *);
static void	svm_timer_cb(evutil_socket_t, short, void *);
static void	svm_linger_cb(evutil_socket_t, short, void *);
static void	svm_disconnect(struct svm *, const char *why);
static void	svm_post_decider(struct svm *, int);
static void	svm_flush_verdicts(struct svm *);

static void
svm_timer_ms(struct svm *s, uint32_t ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(s->timer, &tv);
}

static void
svm_set_state(struct svm *s, enum svm_state st)
{
	int was_live = s->state == SVM_LIVE;

	s->state = st;
	s->since_ns = now_ns();
	if (was_live != (st == SVM_LIVE))
		fanout_solutions_changed(s->fo);
	fanout_publish(s->fo);
}

struct svm *
svm_new(struct fanout *fo, const struct svm_entry *e)
{
	const struct config *conf = fo->conf;
	const struct config_svm *c = &e->conf;
	struct svm *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		fatal("svm");
	s->fo = fo;
	s->conf = *c;
	snprintf(s->peer, sizeof(s->peer), "svm %s (%s)", c->name, c->address);
	/* Resolved by the main thread: the fan-out thread never waits on DNS. */
	memcpy(&s->sa, &e->sa, sizeof(s->sa));
	s->salen = e->salen;
	s->timer = evtimer_new(fo->base, svm_timer_cb, s);
	s->linger = evtimer_new(fo->base, svm_linger_cb, s);
	s->if_cap = conf->svm_window > SVM_WINDOW_MAX ? SVM_WINDOW_MAX : conf->svm_window;
	if (s->if_cap < SVM_WINDOW_MAX)
		s->if_cap = SVM_WINDOW_MAX;	/* an SVM may ask for more */
	s->inflight = calloc(s->if_cap, sizeof(*s->inflight));
	if (s->timer == NULL || s->linger == NULL || s->inflight == NULL ||
	    batch_init(&s->batch, conf->batch_max_bytes,
	    fo->mux->ring.max_len) == -1)
		fatal("svm");
	s->backoff_ms = BACKOFF_FIRST_MS;
	s->state = SVM_IDLE;
	s->since_ns = now_ns();
	return s;
}

void
svm_free(struct svm *s)
{
	free(s->vbatch);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	event_free(s->timer);
	event_free(s->linger);
	batch_free(&s->batch);
	free(s->inflight);
	free(s->cids);
	free(s);
}

/* An IP address is checked against the certificate's IP SANs, a name
 * against its DNS names. Only a name goes in SNI (RFC 6066: no IPs). */
static int
svm_tls_expect_name(SSL *ssl, const char *name)
{
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
	unsigned char buf[16];

	if (inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(vp, name);
	if (SSL_set_tlsext_host_name(ssl, name) != 1)
		return 0;
	return SSL_set1_host(ssl, name);
}

static void
svm_dial(struct svm *s)
{
	evutil_socket_t fd;
	int one = 1;

	if (s->conf.tls) {
		SSL *ssl = SSL_new(s->fo->tls);

		/* The name the certificate must carry (and SNI). */
		if (ssl == NULL ||
		    svm_tls_expect_name(ssl, s->conf.server_name) != 1) {
			if (ssl != NULL)
				SSL_free(ssl);
			svm_disconnect(s, "tls: cannot set up the session");
			return;
		}
		s->bev = bufferevent_openssl_socket_new(s->fo->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		/* An SVM that just closes its socket is gone, not an error. */
		if (s->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	} else
		s->bev = bufferevent_socket_new(s->fo->base, -1,
		    BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		svm_disconnect(s, "cannot create socket");
		return;
	}
	bufferevent_setcb(s->bev, svm_read_cb, svm_write_cb, svm_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0,
	    (size_t)s->fo->conf->svm_max_frame + FRAME_HDR_LEN);
	bufferevent_setwatermark(s->bev, EV_WRITE, SVM_OUT_LOW, 0);
	svm_set_state(s, SVM_CONNECTING);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&s->sa,
	    (int)s->salen) == -1) {
		svm_disconnect(s, "connect failed");
		return;
	}
	/* Batches are already coalesced; Nagle would only add delay. */
	fd = bufferevent_getfd(s->bev);
	if (fd >= 0 && s->sa.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	svm_timer_ms(s, SVM_CONNECT_TIMEOUT_MS);
}

void
svm_start(struct svm *s)
{
	svm_dial(s);
}

/*
 * The entry is removed: the deciders forget it, the connection closes
 * (freed from the loop), no redial. The caller frees s.
 */
void
svm_retire(struct svm *s)
{
	if (s->state == SVM_LIVE) {
		svm_flush_verdicts(s);
		svm_post_decider(s, 0);
	}
	if (s->bev != NULL) {
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
		fanout_defer_free(s->fo, s->bev);
		s->bev = NULL;
	}
	evtimer_del(s->timer);
	evtimer_del(s->linger);
	s->state = SVM_REMOVED;
}

/* Drop the connection; redial after the backoff (doubling, capped). */
static void
svm_disconnect(struct svm *s, const char *why)
{
	uint32_t delay;

	if (s->state == SVM_LIVE || s->state == SVM_REGISTERING)
		log_warnx("%s: disconnected: %s", s->peer, why);
	else
		log_debug("%s: %s", s->peer, why);
	if (why != s->last_error)
		snprintf(s->last_error, sizeof(s->last_error), "%s", why);
	if (s->state == SVM_LIVE) {
		/* Verdicts read so far go first, then the news of the loss. */
		svm_flush_verdicts(s);
		svm_post_decider(s, 0);
	}
	if (s->bev != NULL) {
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
		fanout_defer_free(s->fo, s->bev);
		s->bev = NULL;
	}
	evtimer_del(s->linger);
	batch_reset(&s->batch);
	s->if_count = 0;
	s->flushing = 0;
	svm_set_state(s, SVM_IDLE);
	/* Jitter of +-20% keeps many SVMs from redialing in lockstep. */
	delay = s->backoff_ms - s->backoff_ms / 5 +
	    (uint32_t)(mux_random64() % (s->backoff_ms * 2 / 5 + 1));
	svm_timer_ms(s, delay);
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
	    s->backoff_ms * 2;
}

static void
svm_protocol_error(struct svm *s, enum perr p, const char *detail)
{
	char why[192];

	metrics_proto_error(LINK_SVM, p);
	snprintf(why, sizeof(why), "protocol error: %s%s%s", metrics_perr_name(p),
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	svm_disconnect(s, why);
}

int
svm_send(struct svm *s, const ProtobufCMessage *m)
{
	if (s->bev == NULL)
		return -1;
	if (frame_ev_send(bufferevent_get_output(s->bev), m,
	    s->fo->conf->svm_max_frame) == -1) {
		log_error("%s: outgoing message too large", s->peer);
		return -1;
	}
	s->last_tx = mono_ns();
	return 0;
}

static void
svm_reject(struct svm *s, Mux__Reject__Code code, const char *reason)
{
	Mux__MuxToSvm m = MUX__MUX_TO_SVM__INIT;
	Mux__Reject r = MUX__REJECT__INIT;

	r.code = code;
	r.reason = (char *)reason;
	m.msg_case = MUX__MUX_TO_SVM__MSG_REJECT;
	m.reject = &r;
	svm_send(s, &m.base);
	s->rejects++;
	METRIC_INC(metrics.svm_rejects);
	log_warnx("%s: registration refused: %s", s->peer, reason);
	snap_alarm(&s->fo->mux->snap, "%s: registration refused: %s", s->peer, reason);
	snprintf(s->last_error, sizeof(s->last_error), "rejected: %s", reason);
	/* Close once the Reject is written (svm_write_cb). */
	s->flushing = 1;
	bufferevent_disable(s->bev, EV_READ);
}

int
svm_wants_cid(const struct svm *s, uint32_t cid)
{
	size_t lo = 0, hi = s->ncids, mid;

	if (s->cids == NULL)
		return 1;
	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (s->cids[mid] == cid)
			return 1;
		if (s->cids[mid] < cid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

void
svm_send_vm_status(struct svm *s, const struct vm_mirror *v)
{
	Mux__MuxToSvm m = MUX__MUX_TO_SVM__INIT;
	Mux__VmStatus st = MUX__VM_STATUS__INIT;
	Mux__VmRef ref = MUX__VM_REF__INIT;

	if (s->state != SVM_LIVE || !svm_wants_cid(s, v->cid))
		return;
	ref.cid = v->cid;
	ref.vm_uuid = (char *)v->uuid;
	ref.vm_name = (char *)v->name;
	st.vm = &ref;
	st.state = v->state;
	st.agent_version = (char *)v->agent_version;
	st.claimed_vm_uuid = (char *)v->claimed_uuid;
	m.msg_case = MUX__MUX_TO_SVM__MSG_VM_STATUS;
	m.vm_status = &st;
	svm_send(s, &m.base);
}

static void
svm_send_gap(struct svm *s, uint64_t first, uint64_t last,
    Mux__Gap__Reason reason)
{
	Mux__MuxToSvm m = MUX__MUX_TO_SVM__INIT;
	Mux__Gap g = MUX__GAP__INIT;

	g.first_seq = first;
	g.last_seq = last;
	g.reason = reason;
	g.count = 0;		/* evicted records' classes are unknown */
	m.msg_case = MUX__MUX_TO_SVM__MSG_GAP;
	m.gap = &g;
	svm_send(s, &m.base);
	s->gaps++;
	if (reason == MUX__GAP__REASON__OVERRUN)
		s->gap_events += last - first + 1;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Tells the ingest thread this session is (or no longer is) a decider. */
static void
svm_post_decider(struct svm *s, int up)
{
	struct mbox_msg *m;
	struct decider_msg *d;
	size_t n = up ? s->ncids : 0;

	m = mbox_msg_new(MBOX_DECIDER, sizeof(*d) + n * sizeof(uint32_t));
	d = (struct decider_msg *)m->data;
	d->slot = s->slot;
	d->gen = s->gen;
	d->up = up;
	d->verdicts = s->verdicts;
	d->classes = s->classes;
	snprintf(d->service_id, sizeof(d->service_id), "%s", s->conf.service_id);
	d->ncids = n;
	if (n > 0)
		memcpy(d->cids, s->cids, n * sizeof(uint32_t));
	mbox_post(&s->fo->mux->to_ingest, m);
}

static void
svm_flush_verdicts(struct svm *s)
{
	if (s->vbatch == NULL)
		return;
	mbox_post(&s->fo->mux->to_ingest, s->vbatch);
	s->vbatch = NULL;
}

static void
svm_verdict(struct svm *s, const Mux__SvmVerdict *v)
{
	struct verdicts_msg *vm;
	struct verdict_item *it;

	struct ring_meta meta;

	/*
	 * Ignored and counted here, without crossing threads (section 8): an
	 * SVM not registered to decide, a seq never offered to it, an event
	 * without reply_expected. This also bounds what an SVM can make us
	 * queue for the ingest thread.
	 */
	if (!s->verdicts || v->seq >= s->cursor || v->seq == 0 ||
	    (ring_meta_mc(&s->fo->mux->ring, v->seq, &meta) == RING_OK &&
	    (meta.flags & RING_F_REPLY) == 0)) {
		METRIC_INC(metrics.svm_verdicts_ignored);
		return;
	}
	if (s->vbatch == NULL) {
		s->vbatch = mbox_msg_new(MBOX_VERDICTS, sizeof(*vm) +
		    SVM_VERDICT_BATCH * sizeof(*it));
		vm = (struct verdicts_msg *)s->vbatch->data;
		vm->slot = s->slot;
		vm->gen = s->gen;
		vm->n = 0;
	}
	vm = (struct verdicts_msg *)s->vbatch->data;
	it = &vm->items[vm->n++];
	it->seq = v->seq;
	it->action = (int)v->action;
	snprintf(it->reason, sizeof(it->reason), "%s", v->reason);
	if (vm->n == SVM_VERDICT_BATCH)
		svm_flush_verdicts(s);
}

static void
svm_request_error(struct svm *s, enum svm_req_kind kind, uint64_t request_id,
    uint64_t offset, int error, const char *message)
{
	Mux__MuxToSvm m = MUX__MUX_TO_SVM__INIT;
	Mux__FileData fd = MUX__FILE_DATA__INIT;
	Mux__ActionResult ar = MUX__ACTION_RESULT__INIT;

	METRIC_INC(metrics.svm_requests_failed);
	if (kind == SVM_REQ_READ) {
		fd.request_id = request_id;
		fd.offset = offset;
		fd.error = error;
		fd.eof = 1;
		m.msg_case = MUX__MUX_TO_SVM__MSG_FILE_DATA;
		m.file_data = &fd;
	} else {
		ar.request_id = request_id;
		ar.ok = 0;
		ar.message = (char *)message;
		m.msg_case = MUX__MUX_TO_SVM__MSG_ACTION_RESULT;
		m.action_result = &ar;
	}
	log_debug("%s: request %llu refused: %s", s->peer,
	    (unsigned long long)request_id, message);
	svm_send(s, &m.base);
}

/*
 * SvmReadFile / SvmRemediate (protocol 4.8): checked here against the
 * ring, then relayed by the ingest thread to the agent connection that
 * sent the event.
 */
static void
svm_request(struct svm *s, enum svm_req_kind kind, uint64_t request_id,
    uint64_t seq, uint64_t offset, uint32_t length, int remediation)
{
	struct fanout *fo = s->fo;
	enum frame_decode_result res;
	struct svm_request *rq;
	struct ring_meta meta;
	Mux__Delivery *d;
	struct mbox_msg *m;

	if (kind == SVM_REQ_READ && (length == 0 || length > WIRE_READ_MAX)) {
		svm_request_error(s, kind, request_id, offset, EINVAL,
		    "length must be 1..32768");
		return;
	}
	if (s->requests_out >= SVM_REQUESTS_MAX) {
		svm_request_error(s, kind, request_id, offset, EAGAIN,
		    "too many requests in flight");
		return;
	}
	if (ring_read_mc(&fo->mux->ring, seq, &meta, fo->rbuf) != RING_OK) {
		svm_request_error(s, kind, request_id, offset, ENOENT,
		    "seq not held");
		return;
	}
	d = (Mux__Delivery *)frame_decode(&mux__delivery__descriptor, fo->rbuf,
	    meta.len, &fo->arena2, &res);
	if (d == NULL || d->event == NULL || d->vm == NULL ||
	    d->event->body_case != MUX__EVENT__BODY_FILE || d->agent_session == 0) {
		svm_request_error(s, kind, request_id, offset, EINVAL,
		    "not a file event");
		frame_arena_reset(&fo->arena2);
		return;
	}
	m = mbox_msg_new(MBOX_SVM_REQUEST, sizeof(*rq));
	rq = (struct svm_request *)m->data;
	rq->slot = s->slot;
	rq->gen = s->gen;
	rq->kind = kind;
	rq->svm_request_id = request_id;
	rq->seq = seq;
	rq->session = d->agent_session;
	rq->cid = d->vm->cid;
	rq->event_id = d->event->event_id;
	rq->file_id = d->event->file->file_id;
	rq->offset = offset;
	rq->length = length;
	rq->remediation = remediation;
	frame_arena_reset(&fo->arena2);
	s->requests_out++;
	mbox_post(&fo->mux->to_ingest, m);
}

/* An answer from the ingest thread: to this session if it still is one. */
void
svm_answer(struct svm *s, const struct svm_answer *a)
{
	Mux__MuxToSvm m = MUX__MUX_TO_SVM__INIT;
	Mux__FileData fd = MUX__FILE_DATA__INIT;
	Mux__ActionResult ar = MUX__ACTION_RESULT__INIT;

	if (s->state != SVM_LIVE || s->gen != a->gen) {
		METRIC_INC(metrics.svm_answers_dropped);
		return;
	}
	if (s->requests_out > 0)
		s->requests_out--;
	if (a->kind == SVM_REQ_READ) {
		fd.request_id = a->svm_request_id;
		fd.offset = a->offset;
		fd.data.data = (uint8_t *)a->data;
		fd.data.len = a->len;
		fd.eof = a->eof;
		fd.error = a->error;
		m.msg_case = MUX__MUX_TO_SVM__MSG_FILE_DATA;
		m.file_data = &fd;
	} else {
		ar.request_id = a->svm_request_id;
		ar.ok = a->ok;
		ar.message = (char *)a->message;
		m.msg_case = MUX__MUX_TO_SVM__MSG_ACTION_RESULT;
		m.action_result = &ar;
	}
	svm_send(s, &m.base);
}

static void
svm_register(struct svm *s, const Mux__Register *r)
{
	struct fanout *fo = s->fo;
	struct ring *ring = &fo->mux->ring;
	Mux__MuxToSvm m = MUX__MUX_TO_SVM__INIT;
	Mux__Registered reg = MUX__REGISTERED__INIT;
	struct vm_mirror *v;
	uint64_t head, tail;
	char why[320];
	size_t i;

	if (r->protocol_version != WIRE_PROTOCOL_VERSION) {
		metrics_proto_error(LINK_SVM, PERR_VERSION);
		snprintf(why, sizeof(why), "protocol version %u (we speak %d)",
		    r->protocol_version, WIRE_PROTOCOL_VERSION);
		svm_reject(s, MUX__REJECT__CODE__VERSION_MISMATCH, why);
		return;
	}
	for (i = 0; i < r->n_classes; i++)
		if (!wire_class_valid((int)r->classes[i])) {
			svm_protocol_error(s, PERR_BAD_ENUM, "classes");
			return;
		}
	if (strcmp(r->service_id, s->conf.service_id) != 0) {
		metrics_proto_error(LINK_SVM, PERR_NOT_AUTHORIZED);
		snprintf(why, sizeof(why), "service_id '%.100s' is not the one "
		    "configured for [svm %.60s] ('%.100s')", r->service_id,
		    s->conf.name, s->conf.service_id);
		svm_reject(s, MUX__REJECT__CODE__NOT_AUTHORIZED, why);
		return;
	}
	if (fanout_duplicate(fo, s, r->service_id, r->instance_id)) {
		snprintf(why, sizeof(why), "service_id '%.100s' instance_id "
		    "'%.100s' is already registered", r->service_id, r->instance_id);
		svm_reject(s, MUX__REJECT__CODE__DUPLICATE, why);
		return;
	}

	snprintf(s->instance_id, sizeof(s->instance_id), "%s", r->instance_id);
	s->classes = wire_class_mask_of(r->classes, r->n_classes);
	free(s->cids);
	s->cids = NULL;
	s->ncids = r->n_vm_cids;
	if (r->n_vm_cids > 0) {
		if ((s->cids = calloc(r->n_vm_cids, sizeof(*s->cids))) == NULL)
			fatal("svm cids");
		memcpy(s->cids, r->vm_cids, r->n_vm_cids * sizeof(*s->cids));
		qsort(s->cids, s->ncids, sizeof(*s->cids), cmp_u32);
	}
	s->verdicts = r->verdicts;
	s->window = r->window == 0 ? fo->conf->svm_window : r->window;
	if (s->window > s->if_cap)
		s->window = s->if_cap;
	s->if_count = 0;
	s->if_head = 0;

	head = ring_head_mc(ring);
	tail = ring_tail_mc(ring);
	reg.epoch = fo->mux->epoch;
	reg.next_seq = head;
	reg.oldest_seq = tail;
	m.msg_case = MUX__MUX_TO_SVM__MSG_REGISTERED;
	m.registered = &reg;
	svm_send(s, &m.base);

	/* Resume (protocol 4.7). */
	s->cursor = head;
	if (r->resume_from != 0 && r->resume_epoch == fo->mux->epoch) {
		if (r->resume_from < tail) {
			svm_send_gap(s, r->resume_from, tail - 1,
			    MUX__GAP__REASON__OVERRUN);
			s->cursor = tail;
		} else if (r->resume_from < head)
			s->cursor = r->resume_from;
	} else if (r->resume_from != 0 || r->resume_epoch != 0) {
		svm_send_gap(s, r->resume_from, 0, MUX__GAP__REASON__EPOCH_CHANGED);
	}
	s->acked = s->cursor - 1;
	s->backoff_ms = BACKOFF_FIRST_MS;
	s->connects++;
	s->gen++;
	s->requests_out = 0;
	svm_post_decider(s, 1);
	s->last_error[0] = '\0';
	svm_set_state(s, SVM_LIVE);
	/* Full state: every VM with an agent connected (protocol 4.3). */
	LIST_FOREACH(v, &fo->vms, entry)
		if (v->connected)
			svm_send_vm_status(s, v);
	log_info("%s: registered service %s instance %s (classes 0x%x, %zu cids, "
	    "verdicts %s, window %u, resume %llu@%llx -> seq %llu)", s->peer,
	    r->service_id, r->instance_id, s->classes, s->ncids,
	    s->verdicts ? "yes" : "no", s->window,
	    (unsigned long long)r->resume_from, (unsigned long long)r->resume_epoch,
	    (unsigned long long)s->cursor);
	svm_timer_ms(s, fo->conf->heartbeat_ms);
	svm_pump(s);
}

static void
svm_ack(struct svm *s, uint64_t seq)
{
	if (seq >= s->cursor) {
		svm_protocol_error(s, PERR_ACK_AHEAD, "ack for a seq never offered");
		return;
	}
	if (seq <= s->acked)
		return;
	s->acked = seq;
	while (s->if_count > 0 && s->inflight[s->if_head] <= seq) {
		s->if_head = (s->if_head + 1) % s->if_cap;
		s->if_count--;
	}
	svm_pump(s);
}

static int
svm_dispatch(struct svm *s, const Mux__SvmToMux *msg)
{
	switch (msg->msg_case) {
	case MUX__SVM_TO_MUX__MSG__NOT_SET:
		svm_protocol_error(s, PERR_NO_ONEOF, NULL);
		return -1;
	case MUX__SVM_TO_MUX__MSG_HEARTBEAT:
		return 0;
	case MUX__SVM_TO_MUX__MSG_REGISTER:
		if (s->state != SVM_REGISTERING) {
			svm_protocol_error(s, PERR_UNEXPECTED, "second register");
			return -1;
		}
		svm_register(s, msg->register_);
		return 0;
	default:
		break;
	}
	if (s->state != SVM_LIVE) {
		svm_protocol_error(s, PERR_UNEXPECTED, "expected register first");
		return -1;
	}
	switch (msg->msg_case) {
	case MUX__SVM_TO_MUX__MSG_ACK:
		svm_ack(s, msg->ack->seq);
		break;
	case MUX__SVM_TO_MUX__MSG_VERDICT:
		if (msg->verdict->action != MUX__ACTION__ALLOW &&
		    msg->verdict->action != MUX__ACTION__DENY) {
			svm_protocol_error(s, PERR_BAD_ENUM, "verdict action");
			return -1;
		}
		svm_verdict(s, msg->verdict);
		break;
	case MUX__SVM_TO_MUX__MSG_READ_FILE:
		svm_request(s, SVM_REQ_READ, msg->read_file->request_id,
		    msg->read_file->seq, msg->read_file->offset,
		    msg->read_file->length, 0);
		break;
	case MUX__SVM_TO_MUX__MSG_REMEDIATE:
		if (msg->remediate->kind < MUX__REMEDIATION_KIND__DELETE ||
		    msg->remediate->kind > MUX__REMEDIATION_KIND__DENY_ACCESS) {
			svm_protocol_error(s, PERR_BAD_ENUM, "remediation kind");
			return -1;
		}
		svm_request(s, SVM_REQ_REMEDIATE, msg->remediate->request_id,
		    msg->remediate->seq, 0, 0, (int)msg->remediate->kind);
		break;
	default:
		svm_protocol_error(s, PERR_UNEXPECTED, NULL);
		return -1;
	}
	return 0;
}

static void
svm_read_cb(struct bufferevent *bev, void *arg)
{
	struct svm *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	enum frame_decode_result res;
	Mux__SvmToMux *msg;
	const uint8_t *body;
	enum frame_status st;
	uint32_t len;

	s->last_rx = mono_ns();
	while (s->bev == bev && !s->flushing) {
		st = frame_ev_peek(in, s->fo->conf->svm_max_frame, &body, &len);
		if (st == FRAME_NEED_MORE)
			break;
		if (st != FRAME_OK) {
			svm_protocol_error(s, st == FRAME_ERR_EMPTY ?
			    PERR_EMPTY_FRAME : PERR_FRAME_TOO_BIG, NULL);
			break;
		}
		msg = (Mux__SvmToMux *)frame_decode(&mux__svm_to_mux__descriptor,
		    body, len, &s->fo->arena, &res);
		if (msg == NULL) {
			svm_protocol_error(s, res == FRAME_DECODE_BUDGET ?
			    PERR_ALLOC_BUDGET : PERR_DECODE, NULL);
			break;
		}
		if (svm_dispatch(s, msg) == -1)
			break;
		if (s->bev == bev)
			frame_ev_consume(in, len);
	}
	/* One message to the ingest thread per read, not per verdict. */
	svm_flush_verdicts(s);
	frame_arena_reset(&s->fo->arena);
}

static void
svm_write_cb(struct bufferevent *bev, void *arg)
{
	struct svm *s = arg;

	if (s->flushing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			svm_disconnect(s, s->last_error);
		return;
	}
	/* Output drained below SVM_OUT_LOW: fill it again. */
	if (s->state == SVM_LIVE)
		svm_pump(s);
}

static void
svm_send_hello(struct svm *s)
{
	Mux__MuxToSvm m = MUX__MUX_TO_SVM__INIT;
	Mux__MuxHello h = MUX__MUX_HELLO__INIT;

	h.protocol_version = WIRE_PROTOCOL_VERSION;
	h.host_id = s->fo->mux->conf.host_id;
	h.mux_version = (char *)MUX_VERSION;
	h.epoch = s->fo->mux->epoch;
	h.heartbeat_ms = s->fo->conf->heartbeat_ms;
	m.msg_case = MUX__MUX_TO_SVM__MSG_HELLO;
	m.hello = &h;
	svm_send(s, &m.base);
}

static void
svm_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct svm *s = arg;
	char why[128];

	if (what & BEV_EVENT_CONNECTED) {
		log_debug("%s: connected", s->peer);
		s->last_rx = s->last_tx = mono_ns();
		svm_set_state(s, SVM_REGISTERING);
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
		svm_send_hello(s);
		svm_timer_ms(s, REGISTER_TIMEOUT_MS);
		return;
	}
	if (what & BEV_EVENT_EOF)
		svm_disconnect(s, "connection closed by SVM");
	else if (what & BEV_EVENT_ERROR) {
		unsigned long e = s->conf.tls ? bufferevent_get_openssl_error(bev) : 0;

		if (e != 0) {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
			char buf[160];

			/* A handshake refused: wrong CA, wrong name, no TLS 1.3;
			 * the certificate check says which. */
			ERR_error_string_n(e, buf, sizeof(buf));
			snprintf(why, sizeof(why), "tls: %.80s%s%.40s%s", buf,
			    v != X509_V_OK ? " (" : "",
			    v != X509_V_OK ? X509_verify_cert_error_string(v) : "",
			    v != X509_V_OK ? ")" : "");
			metrics_proto_error(LINK_SVM, PERR_TLS);
			if (s->state == SVM_CONNECTING)
				snap_alarm(&s->fo->mux->snap, "%s: %s", s->peer, why);
		} else
			snprintf(why, sizeof(why), "connection error: %s",
			    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		svm_disconnect(s, why);
	}
}

static void
svm_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct svm *s = arg;
	Mux__MuxToSvm m = MUX__MUX_TO_SVM__INIT;
	Mux__Heartbeat hb = MUX__HEARTBEAT__INIT;
	uint64_t now = mono_ns(), hb_ns;

	(void)fd;
	(void)ev;
	hb_ns = (uint64_t)s->fo->conf->heartbeat_ms * 1000000u;
	switch (s->state) {
	case SVM_IDLE:
		svm_dial(s);
		break;
	case SVM_CONNECTING:
		svm_disconnect(s, "connect timeout");
		break;
	case SVM_REGISTERING:
		svm_protocol_error(s, PERR_REGISTER_TIMEOUT, "no Register within 10 s");
		break;
	case SVM_LIVE:
		if (now - s->last_rx >= HEARTBEAT_MISSES * hb_ns) {
			svm_protocol_error(s, PERR_HEARTBEAT_TIMEOUT, "silent");
			break;
		}
		if (now - s->last_tx >= hb_ns / 2) {
			hb.time_ns = now_ns();
			m.msg_case = MUX__MUX_TO_SVM__MSG_HEARTBEAT;
			m.heartbeat = &hb;
			svm_send(s, &m.base);
		}
		svm_timer_ms(s, s->fo->conf->heartbeat_ms);
		break;
	default:
		break;
	}
}

static void
svm_flush(struct svm *s)
{
	const uint8_t *frame;
	size_t len;

	if (s->batch.count == 0 || s->bev == NULL)
		return;
	frame = batch_finish(&s->batch, &len);
	bufferevent_write(s->bev, frame, len);
	s->last_tx = mono_ns();
	s->batches++;
	batch_reset(&s->batch);
	evtimer_del(s->linger);
}

static void
svm_linger_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct svm *s = arg;

	(void)fd;
	(void)ev;
	svm_flush(s);
	svm_pump(s);
}

/* The cursor fell behind retention: Gap (OVERRUN) or disconnect. */
static int
svm_overrun(struct svm *s)
{
	uint64_t tail = ring_tail_mc(&s->fo->mux->ring), now = mono_ns();
	char why[128];

	svm_flush(s);		/* deliveries before the gap go first */
	if (s->fo->conf->slow_svm == CONFIG_SLOW_SVM_DISCONNECT) {
		snprintf(why, sizeof(why), "slow: %llu events behind retention "
		    "(slow_svm = disconnect)", (unsigned long long)(tail - s->cursor));
		snap_alarm(&s->fo->mux->snap, "%s: %s", s->peer, why);
		svm_disconnect(s, why);
		return -1;
	}
	if (now - s->last_gap_log >= SVM_GAP_LOG_EVERY_NS) {
		log_warnx("%s: fell behind retention: gap %llu..%llu (%llu seqs); "
		    "%llu lost so far", s->peer, (unsigned long long)s->cursor,
		    (unsigned long long)(tail - 1),
		    (unsigned long long)(tail - s->cursor),
		    (unsigned long long)(s->gap_events + tail - s->cursor));
		s->last_gap_log = now;
	}
	svm_send_gap(s, s->cursor, tail - 1, MUX__GAP__REASON__OVERRUN);
	s->cursor = tail;
	return 0;
}

static int
svm_matches(const struct svm *s, const struct ring_meta *m)
{
	return (s->classes & (1u << m->cls)) != 0 && svm_wants_cid(s, m->cid);
}

/*
 * Move the cursor forward: deliveries into the batch while the window and
 * the socket allow. Never waits and never makes the producer wait.
 */
void
svm_pump(struct svm *s)
{
	const struct config *conf = s->fo->conf;
	struct ring *ring = &s->fo->mux->ring;
	struct evbuffer *out;
	struct ring_meta m;
	enum ring_read st;
	uint64_t head;
	uint8_t *dst;

	if (s->state != SVM_LIVE || s->flushing || s->bev == NULL)
		return;
	out = bufferevent_get_output(s->bev);
	head = ring_head_mc(ring);
	while (s->cursor != head) {
		if (s->if_count >= s->window ||
		    evbuffer_get_length(out) >= SVM_OUT_HIGH)
			break;
		st = ring_meta_mc(ring, s->cursor, &m);
		if (st == RING_OVERRUN) {
			if (svm_overrun(s) == -1)
				return;
			continue;
		}
		if (!svm_matches(s, &m)) {
			s->cursor++;
			continue;
		}
		if (!batch_fits(&s->batch, m.len, conf->batch_max_events,
		    conf->batch_max_bytes))
			svm_flush(s);
		dst = batch_item_begin(&s->batch, m.len);
		if (ring_read_mc(ring, s->cursor, &m, dst) != RING_OK) {
			batch_item_abort(&s->batch);
			if (svm_overrun(s) == -1)
				return;
			continue;
		}
		batch_item_commit(&s->batch, m.len);
		if (m.flags & RING_F_REPLY)
			s->batch.urgent = 1;
		s->inflight[(s->if_head + s->if_count) % s->if_cap] = s->cursor;
		s->if_count++;
		s->delivered++;
		s->cursor++;
	}
	if (s->batch.count == 0)
		return;
	/* reply_expected goes at once: a guest is waiting on it. */
	if (s->batch.urgent || conf->batch_linger_us == 0 ||
	    s->batch.count >= conf->batch_max_events)
		svm_flush(s);
	else if (!evtimer_pending(s->linger, NULL)) {
		struct timeval tv = { conf->batch_linger_us / 1000000,
		    conf->batch_linger_us % 1000000 };

		evtimer_add(s->linger, &tv);
	}
}

void
svm_snapshot(const struct svm *s, struct snap_svm *o)
{
	uint64_t head = ring_head_mc(&s->fo->mux->ring);

	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", s->conf.name);
	snprintf(o->address, sizeof(o->address), "%s", s->conf.address);
	snprintf(o->service_id, sizeof(o->service_id), "%s", s->conf.service_id);
	snprintf(o->instance_id, sizeof(o->instance_id), "%s", s->instance_id);
	snprintf(o->last_error, sizeof(o->last_error), "%s", s->last_error);
	o->state = s->state;
	o->tls = s->conf.tls;
	o->verdicts = s->verdicts;
	o->classes = s->classes;
	o->ncids = (uint32_t)s->ncids;
	o->window = s->window;
	o->cursor = s->cursor;
	o->acked = s->acked;
	o->inflight = s->if_count;
	o->lag = s->state == SVM_LIVE ? head - s->cursor : 0;
	o->delivered = s->delivered;
	o->batches = s->batches;
	o->gaps = s->gaps;
	o->gap_events = s->gap_events;
	o->connects = s->connects;
	o->rejects = s->rejects;
	o->since_ns = s->since_ns;
}
