/*
 * fanout.c: the fan-out thread. It owns the SVM sessions (svm.c), a mirror
 * of VM status for the full-state VmStatus on register, and the solution
 * state that agents receive. It reads the ring; it never writes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "fanout.h"

static _Atomic uint64_t delivered_total;

uint64_t
fanout_delivered_total(void)
{
	return atomic_load_explicit(&delivered_total, memory_order_relaxed);
}

static void
fanout_reap_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct fanout *fo = arg;
	size_t i;

	(void)fd;
	(void)ev;
	for (i = 0; i < fo->ndead; i++)
		bufferevent_free(fo->dead[i]);
	fo->ndead = 0;
}

/* Free a bufferevent from the loop, never inside its own callback. */
void
fanout_defer_free(struct fanout *fo, struct bufferevent *bev)
{
	if (fo->ndead == sizeof(fo->dead) / sizeof(fo->dead[0]))
		fanout_reap_cb(-1, 0, fo);	/* not reachable from a bev cb twice */
	fo->dead[fo->ndead++] = bev;
	event_active(fo->reaper, EV_TIMEOUT, 0);
}

int
fanout_duplicate(struct fanout *fo, const struct svm *self, const char *service_id,
    const char *instance_id)
{
	struct svm *s;

	TAILQ_FOREACH(s, &fo->svms, entry)
		if (s != self && s->state == SVM_LIVE &&
		    strcmp(s->conf.service_id, service_id) == 0 &&
		    strcmp(s->instance_id, instance_id) == 0)
			return 1;
	return 0;
}

/*
 * Solution state (protocol 3.4): one Solution per configured service_id,
 * its live instances aggregated. Full state; posted to the ingest thread
 * only when the content changes, with a new generation.
 */
void
fanout_solutions_changed(struct fanout *fo)
{
	Mux__MuxToAgent m = MUX__MUX_TO_AGENT__INIT;
	Mux__SolutionState st = MUX__SOLUTION_STATE__INIT;
	Mux__Solution sols[CONFIG_SVMS_MAX], *ptrs[CONFIG_SVMS_MAX];
	Mux__EventClass classes[CONFIG_SVMS_MAX][WIRE_NCLASSES];
	wire_class_mask mask[CONFIG_SVMS_MAX];
	struct mbox_msg *msg;
	struct svm *s;
	size_t n = 0, i, len;
	uint8_t *buf;
	int c;

	TAILQ_FOREACH(s, &fo->svms, entry) {
		for (i = 0; i < n; i++)
			if (strcmp(sols[i].service_id, s->conf.service_id) == 0)
				break;
		if (i == n) {
			if (n == CONFIG_SVMS_MAX)
				continue;
			mux__solution__init(&sols[n]);
			sols[n].service_id = s->conf.service_id;
			mask[n] = 0;
			ptrs[n] = &sols[n];
			n++;
		}
		if (s->state != SVM_LIVE)
			continue;
		sols[i].up = 1;
		sols[i].verdicts |= s->verdicts;
		mask[i] |= s->classes;
	}
	for (i = 0; i < n; i++) {
		sols[i].classes = classes[i];
		for (c = MUX__EVENT_CLASS__FILE; c <= MUX__EVENT_CLASS__VM; c++)
			if (mask[i] & (1u << c))
				classes[i][sols[i].n_classes++] = (Mux__EventClass)c;
	}
	st.solutions = ptrs;
	st.n_solutions = n;

	/* Compare the content without the generation. */
	len = protobuf_c_message_get_packed_size(&st.base);
	if ((buf = malloc(len + 1)) == NULL)
		fatal("solutions");
	protobuf_c_message_pack(&st.base, buf);
	if (fo->sol_last != NULL && len == fo->sol_last_len &&
	    memcmp(buf, fo->sol_last, len) == 0) {
		free(buf);
		return;
	}
	free(fo->sol_last);
	fo->sol_last = buf;
	fo->sol_last_len = len;

	st.generation = ++fo->sol_generation;
	atomic_store_explicit(&metrics.solution_generation, st.generation,
	    memory_order_relaxed);
	m.msg_case = MUX__MUX_TO_AGENT__MSG_SOLUTIONS;
	m.solutions = &st;
	len = protobuf_c_message_get_packed_size(&m.base);
	msg = mbox_msg_new(MBOX_SOLUTIONS, len + FRAME_HDR_LEN);
	frame_pack(&m.base, msg->data);
	mbox_post(&fo->mux->to_ingest, msg);
	log_debug("fanout: solution state generation %llu",
	    (unsigned long long)st.generation);
}

void
fanout_publish(struct fanout *fo)
{
	struct snap_svm *arr = NULL;
	uint64_t delivered = 0;
	struct svm *s;
	size_t n = 0, i = 0;

	TAILQ_FOREACH(s, &fo->svms, entry)
		n++;
	if (n > 0 && (arr = calloc(n, sizeof(*arr))) == NULL)
		return;
	TAILQ_FOREACH(s, &fo->svms, entry) {
		svm_snapshot(s, &arr[i++]);
		delivered += s->delivered;
	}
	atomic_store_explicit(&delivered_total, delivered, memory_order_relaxed);
	snap_set_svms(&fo->mux->snap, arr, n);
}

static void
fanout_snap_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	fanout_publish(arg);
}

static void
fanout_ring_cb(void *arg)
{
	struct fanout *fo = arg;
	struct svm *s;

	TAILQ_FOREACH(s, &fo->svms, entry)
		svm_pump(s);
}

static struct vm_mirror *
fanout_vm(struct fanout *fo, uint32_t cid)
{
	struct vm_mirror *v;

	LIST_FOREACH(v, &fo->vms, entry)
		if (v->cid == cid)
			return v;
	return NULL;
}

/* muxctl svm add/remove and reload: a session starts or goes for good. */
static void
fanout_svm_change(struct fanout *fo, int add, const struct svm_entry *e)
{
	const struct config_svm *c = &e->conf;
	struct svm *s;
	size_t slot;

	if (add) {
		for (slot = 0; slot < CONFIG_SVMS_MAX && fo->slots[slot] != NULL; slot++)
			;
		if (slot == CONFIG_SVMS_MAX) {
			log_error("svm %s: no free slot", c->name);
			return;
		}
		s = svm_new(fo, e);
		s->slot = (int)slot;
		fo->slots[slot] = s;
		TAILQ_INSERT_TAIL(&fo->svms, s, entry);
		svm_start(s);
		fanout_solutions_changed(fo);
		fanout_publish(fo);
		return;
	}
	TAILQ_FOREACH(s, &fo->svms, entry)
		if (strcmp(s->conf.name, c->name) == 0)
			break;
	if (s == NULL)
		return;
	svm_retire(s);
	TAILQ_REMOVE(&fo->svms, s, entry);
	fo->slots[s->slot] = NULL;
	svm_free(s);
	fanout_solutions_changed(fo);
	fanout_publish(fo);
}

static void
fanout_mbox_cb(void *arg)
{
	struct fanout *fo = arg;
	struct mbox_list list;
	struct mbox_msg *m;
	struct vm_mirror *v;
	struct svm *s;

	mbox_take(&fo->mux->to_fanout, &list);
	while ((m = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, m, entry);
		if (m->type == MBOX_SVM_ANSWER) {
			const struct svm_answer *a = (const struct svm_answer *)m->data;

			if (a->slot >= 0 && a->slot < (int)(sizeof(fo->slots) /
			    sizeof(fo->slots[0])) && fo->slots[a->slot] != NULL)
				svm_answer(fo->slots[a->slot], a);
			free(m);
			continue;
		}
		if (m->type == MBOX_SVM_ADD || m->type == MBOX_SVM_REMOVE) {
			fanout_svm_change(fo, m->type == MBOX_SVM_ADD,
			    (const struct svm_entry *)m->data);
			free(m);
			continue;
		}
		if (m->type != MBOX_VM_STATUS) {
			log_error("fanout: unexpected mailbox message %d", m->type);
			free(m);
			continue;
		}
		if ((v = fanout_vm(fo, m->cid)) == NULL) {
			if ((v = calloc(1, sizeof(*v))) == NULL)
				fatal("vm mirror");
			v->cid = m->cid;
			LIST_INSERT_HEAD(&fo->vms, v, entry);
		}
		v->state = m->state;
		if (m->state == MUX__VM_STATUS__STATE__CONNECTED)
			v->connected = 1;
		memcpy(v->uuid, m->vm_uuid, sizeof(v->uuid));
		memcpy(v->name, m->vm_name, sizeof(v->name));
		memcpy(v->agent_version, m->agent_version, sizeof(v->agent_version));
		memcpy(v->claimed_uuid, m->claimed_uuid, sizeof(v->claimed_uuid));
		TAILQ_FOREACH(s, &fo->svms, entry)
			svm_send_vm_status(s, v);
		/* The full state on register lists connected VMs only. */
		if (v->state == MUX__VM_STATUS__STATE__DISCONNECTED) {
			LIST_REMOVE(v, entry);
			free(v);
		}
		free(m);
	}
}

static void
tls_error(char *err, size_t errlen, const char *what, const char *path)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	snprintf(err, errlen, "[tls] %s %s: %s", what, path, buf);
}

/*
 * The SVM link's TLS (protocol section 4): TLS 1.3 only, mutual. muxd
 * checks each SVM's certificate against [tls] ca and its entry's
 * server_name; it presents [tls] cert/key as its client identity.
 */
struct ssl_ctx_st *
fanout_tls_context(const struct config *conf, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (conf->tls_ca[0] == '\0' || conf->tls_cert[0] == '\0' ||
	    conf->tls_key[0] == '\0') {
		snprintf(err, errlen, "an [svm] entry has tls = on (the default): "
		    "[tls] ca, cert and key are needed (or set tls = off on the "
		    "entries that are plain TCP)");
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "[tls] cannot create a context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/*
	 * libevent closes without close_notify, and OpenSSL 3 reports such
	 * a close as an error that allow_dirty_shutdown does not catch: an
	 * SVM that just stops would count as a TLS failure. A frame cut
	 * short is still never decoded: frames carry their length.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (SSL_CTX_load_verify_locations(ctx, conf->tls_ca, NULL) != 1) {
		tls_error(err, errlen, "ca", conf->tls_ca);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, conf->tls_cert) != 1) {
		tls_error(err, errlen, "cert", conf->tls_cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, conf->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "key", conf->tls_key);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct fanout *
fanout_new(struct mux *mux, char *err, size_t errlen)
{
	const struct config *conf = &mux->conf;
	struct timeval tv = { 0, SNAP_PERIOD_MS * 1000 };
	struct ssl_ctx_st *tls = NULL;
	struct fanout *fo;
	struct svm *s;
	size_t i;

	/* A full batch plus one item must fit in one SVM frame. */
	if ((uint64_t)conf->batch_max_bytes + mux->ring.max_len + 64 >
	    conf->svm_max_frame) {
		snprintf(err, errlen, "svm_max_frame (%u) must exceed batch_max_bytes "
		    "(%u) + agent_max_frame (%u) + %u", conf->svm_max_frame,
		    conf->batch_max_bytes, conf->agent_max_frame,
		    DELIVERY_OVERHEAD + 64);
		return NULL;
	}
	for (i = 0; i < conf->nsvms && !conf->svms[i].tls; i++)
		;
	if (i < conf->nsvms && (tls = fanout_tls_context(conf, err, errlen)) == NULL)
		return NULL;
	if ((fo = calloc(1, sizeof(*fo))) == NULL)
		fatal("fanout");
	fo->mux = mux;
	fo->conf = conf;
	fo->tls = tls;
	mux->tls_ready = tls != NULL;
	TAILQ_INIT(&fo->svms);
	LIST_INIT(&fo->vms);
	frame_arena_init(&fo->arena);
	if ((fo->base = event_base_new()) == NULL)
		fatalx("fanout: event_base_new failed");
	if (wake_init(&mux->ring_wake, fo->base, fanout_ring_cb, fo) == -1 ||
	    mbox_init(&mux->to_fanout, fo->base, fanout_mbox_cb, fo) == -1)
		fatal("fanout wake-ups");
	fo->reaper = event_new(fo->base, -1, 0, fanout_reap_cb, fo);
	fo->snap_timer = event_new(fo->base, -1, EV_PERSIST, fanout_snap_cb, fo);
	if (fo->reaper == NULL || fo->snap_timer == NULL)
		fatalx("fanout: events");
	evtimer_add(fo->snap_timer, &tv);
	frame_arena_init(&fo->arena2);
	if ((fo->rbuf = malloc(mux->ring.max_len)) == NULL)
		fatal("fanout");
	for (i = 0; i < conf->nsvms; i++) {
		struct svm_entry e;

		e.conf = conf->svms[i];
		if (svm_resolve(e.conf.address, &e.sa, &e.salen, err, errlen) == -1)
			fatalx("[svm %s]: %s", e.conf.name, err);
		s = svm_new(fo, &e);
		s->slot = (int)i;	/* CONFIG_SVMS_MAX == VERDICT_SLOTS */
		fo->slots[i] = s;
		TAILQ_INSERT_TAIL(&fo->svms, s, entry);
	}
	/* Agents that connect before any SVM registers get the full state. */
	fanout_solutions_changed(fo);
	fanout_publish(fo);
	return fo;
}

static void *
fanout_main(void *arg)
{
	struct fanout *fo = arg;
	struct svm *s;

	TAILQ_FOREACH(s, &fo->svms, entry)
		svm_start(s);
	event_base_loop(fo->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int
fanout_start(struct fanout *fo)
{
	if (pthread_create(&fo->thread, NULL, fanout_main, fo) != 0)
		return -1;
	fo->running = 1;
	return 0;
}

void
fanout_stop(struct fanout *fo)
{
	if (!fo->running)
		return;
	event_base_loopbreak(fo->base);
	pthread_join(fo->thread, NULL);
	fo->running = 0;
}

void
fanout_free(struct fanout *fo)
{
	struct vm_mirror *v;
	struct svm *s;

	fanout_reap_cb(-1, 0, fo);
	while ((s = TAILQ_FIRST(&fo->svms)) != NULL) {
		TAILQ_REMOVE(&fo->svms, s, entry);
		svm_free(s);
	}
	while ((v = LIST_FIRST(&fo->vms)) != NULL) {
		LIST_REMOVE(v, entry);
		free(v);
	}
	wake_free(&fo->mux->ring_wake);
	mbox_free(&fo->mux->to_fanout);
	event_free(fo->reaper);
	event_free(fo->snap_timer);
	frame_arena_destroy(&fo->arena);
	frame_arena_destroy(&fo->arena2);
	free(fo->rbuf);
	free(fo->sol_last);
	if (fo->tls != NULL)
		SSL_CTX_free(fo->tls);
	event_base_free(fo->base);
	free(fo);
}
