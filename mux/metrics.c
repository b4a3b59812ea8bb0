/*
 * metrics.c: counters and their Prometheus text exposition, served over
 * the control socket (`muxctl metrics`) and, when [metrics] listen is set,
 * over HTTP at /metrics. Counters are relaxed atomics written by the worker
 * that owns the event and read here by the main thread.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "mux.h"

struct metrics metrics;

/* Verdict latency histogram upper bounds, seconds. */
static const double lat_bounds[LAT_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

static const char *const perr_names[PERR__MAX] = {
	[PERR_EMPTY_FRAME] = "empty_frame",
	[PERR_FRAME_TOO_BIG] = "frame_too_big",
	[PERR_DECODE] = "decode",
	[PERR_ALLOC_BUDGET] = "alloc_budget",
	[PERR_NO_ONEOF] = "no_oneof",
	[PERR_UNEXPECTED] = "unexpected_message",
	[PERR_VERSION] = "version",
	[PERR_BAD_ENUM] = "bad_enum",
	[PERR_BAD_FIELD] = "bad_field",
	[PERR_NO_BODY] = "no_body",
	[PERR_REPLY_NOT_ALLOWED] = "reply_not_allowed",
	[PERR_EVENT_ID_ORDER] = "event_id_order",
	[PERR_SPOOFED_VM_EVENT] = "spoofed_vm_event",
	[PERR_CID_LINE] = "cid_line",
	[PERR_CID_LINE_TIMEOUT] = "cid_line_timeout",
	[PERR_HEARTBEAT_TIMEOUT] = "heartbeat_timeout",
	[PERR_REGISTER_TIMEOUT] = "register_timeout",
	[PERR_ACK_AHEAD] = "ack_ahead",
	[PERR_NOT_AUTHORIZED] = "not_authorized",
	[PERR_OUTPUT_OVERFLOW] = "output_overflow",
	[PERR_TLS] = "tls",
};

static const char *const link_names[LINK__MAX] = { "agent", "svm", "control" };
static const char *const drop_names[DROP__MAX] = { "rate", "pending", "conn_limit" };
static const char *const action_names[3] = { "unspecified", "allow", "deny" };
static const char *const vsrc_names[VSRC__MAX] = { "svm", "default" };

const char *
metrics_perr_name(enum perr p)
{
	return p < PERR__MAX ? perr_names[p] : "unknown";
}

const char *
metrics_drop_name(enum drop_reason d)
{
	return d < DROP__MAX ? drop_names[d] : "unknown";
}

void
metrics_proto_error(enum mux_link l, enum perr p)
{
	METRIC_INC(metrics.proto_err[l][p]);
}

void
metrics_verdict(int action, enum verdict_source src, uint64_t latency_ns)
{
	double s = (double)latency_ns / 1e9;
	int i;

	if (action < 0 || action > 2)
		action = 0;
	METRIC_INC(metrics.verdicts[action][src]);
	for (i = 0; i < LAT_BUCKETS && s > lat_bounds[i]; i++)
		;
	METRIC_INC(metrics.lat_bucket[i]);
	METRIC_ADD(metrics.lat_sum_ns, latency_ns);
	METRIC_INC(metrics.lat_count);
}

uint64_t
metrics_received_total(void)
{
	uint64_t n = 0;
	int c;

	for (c = 0; c <= WIRE_NCLASSES; c++)
		n += METRIC_GET(metrics.received[c]);
	return n;
}

static void
help(struct evbuffer *b, const char *name, const char *type, const char *text)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* A metric with one value and no labels. */
static void
one(struct evbuffer *b, const char *name, const char *type, const char *text,
    uint64_t v)
{
	help(b, name, type, text);
	evbuffer_add_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* A metric with a value per [svm] entry: the uint64_t at `off` in snap_svm. */
static void
per_svm(struct evbuffer *b, const char *name, const char *type, const char *text,
    const struct snap_svm *svms, size_t n, size_t off)
{
	size_t i;

	help(b, name, type, text);
	for (i = 0; i < n; i++)
		evbuffer_add_printf(b, "%s{svm=\"%s\"} %llu\n", name, svms[i].name,
		    (unsigned long long)*(const uint64_t *)(const void *)
		    ((const char *)&svms[i] + off));
}

void
metrics_render(struct mux *mux, struct evbuffer *b)
{
	struct snap_svm *svms = NULL;
	uint64_t cum = 0, up = 0;
	size_t i, n = 0;
	int c, l, p, a, s;

	pthread_mutex_lock(&mux->snap.lock);
	if (mux->snap.nsvms > 0) {
		svms = calloc(mux->snap.nsvms, sizeof(*svms));
		if (svms != NULL) {
			memcpy(svms, mux->snap.svms, mux->snap.nsvms * sizeof(*svms));
			n = mux->snap.nsvms;
		}
	}
	pthread_mutex_unlock(&mux->snap.lock);
	for (i = 0; i < n; i++)
		up += svms[i].state == SVM_LIVE;

	one(b, "mux_agents_connected", "gauge", "Agent connections welcomed and open.",
	    METRIC_GET(metrics.agents_connected));
	one(b, "mux_svms_up", "gauge", "SVM sessions registered and live.",
	    up);
	help(b, "mux_events_received_total", "counter", "Events that took a seq, by class.");
	for (c = 1; c <= WIRE_NCLASSES; c++)
		evbuffer_add_printf(b, "mux_events_received_total{class=\"%s\"} %llu\n",
		    wire_class_name(c), (unsigned long long)METRIC_GET(metrics.received[c]));
	per_svm(b, "mux_events_delivered_total", "counter", "Deliveries written to an SVM connection.",
	    svms, n, offsetof(struct snap_svm, delivered));
	help(b, "mux_events_dropped_total", "counter", "Events shed before taking a seq, by reason.");
	for (i = 0; i < DROP__MAX; i++)
		evbuffer_add_printf(b, "mux_events_dropped_total{reason=\"%s\"} %llu\n",
		    drop_names[i], (unsigned long long)METRIC_GET(metrics.dropped[i]));
	per_svm(b, "mux_gap_events_total", "counter", "Seqs an SVM was told (Gap OVERRUN) it will never receive.",
	    svms, n, offsetof(struct snap_svm, gap_events));
	help(b, "mux_protocol_errors_total", "counter", "Protocol errors by link and reason.");
	for (l = 0; l < LINK__MAX; l++)
		for (p = 0; p < PERR__MAX; p++) {
			uint64_t v = METRIC_GET(metrics.proto_err[l][p]);

			/* Print the common ones always, the rest when seen. */
			if (v == 0 && p > PERR_VERSION)
				continue;
			evbuffer_add_printf(b, "mux_protocol_errors_total{link=\"%s\",reason=\"%s\"} %llu\n",
			    link_names[l], perr_names[p], (unsigned long long)v);
		}
	help(b, "mux_verdicts_total", "counter", "Verdicts sent to agents, by action and source.");
	for (a = 1; a <= 2; a++)
		for (s = 0; s < VSRC__MAX; s++)
			evbuffer_add_printf(b, "mux_verdicts_total{action=\"%s\",source=\"%s\"} %llu\n",
			    action_names[a], vsrc_names[s],
			    (unsigned long long)METRIC_GET(metrics.verdicts[a][s]));
	one(b, "mux_verdict_timeouts_total", "counter", "Verdicts given by default on timeout.",
	    METRIC_GET(metrics.verdict_timeouts));
	help(b, "mux_verdict_latency_seconds", "histogram", "Ingest to verdict sent.");
	for (i = 0; i < LAT_BUCKETS; i++) {
		cum += METRIC_GET(metrics.lat_bucket[i]);
		evbuffer_add_printf(b, "mux_verdict_latency_seconds_bucket{le=\"%g\"} %llu\n",
		    lat_bounds[i], (unsigned long long)cum);
	}
	cum += METRIC_GET(metrics.lat_bucket[LAT_BUCKETS]);
	evbuffer_add_printf(b, "mux_verdict_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
	    (unsigned long long)cum);
	evbuffer_add_printf(b, "mux_verdict_latency_seconds_sum %.9f\n",
	    (double)METRIC_GET(metrics.lat_sum_ns) / 1e9);
	evbuffer_add_printf(b, "mux_verdict_latency_seconds_count %llu\n",
	    (unsigned long long)METRIC_GET(metrics.lat_count));
	one(b, "mux_ring_bytes", "gauge", "Bytes retained in the ring.",
	    atomic_load_explicit(&mux->ring.used_bytes, memory_order_relaxed));
	one(b, "mux_ring_events", "gauge", "Events retained in the ring.",
	    (ring_head_mc(&mux->ring) - ring_tail_mc(&mux->ring)));
	one(b, "mux_ring_capacity_bytes", "gauge", "Ring retention limit, bytes.",
	    mux->ring.bytes);
	one(b, "mux_ring_capacity_events", "gauge", "Ring retention limit, events.",
	    mux->ring.events);
	one(b, "mux_ring_evicted_total", "counter", "Records evicted from the ring.",
	    atomic_load_explicit(&mux->ring.evicted, memory_order_relaxed));
	one(b, "mux_identity_mismatch_total", "counter", "Agents whose claimed VM UUID differs from the VM map.",
	    METRIC_GET(metrics.identity_mismatch));
	one(b, "mux_agent_sessions_total", "counter", "Agent connections welcomed since start.",
	    METRIC_GET(metrics.agent_sessions_total));
	per_svm(b, "mux_svm_lag_events", "gauge", "Seqs between the ring head and an SVM's cursor.",
	    svms, n, offsetof(struct snap_svm, lag));
	help(b, "mux_svm_up", "gauge", "1 when the SVM entry's session is live.");
	for (i = 0; i < n; i++)
		evbuffer_add_printf(b, "mux_svm_up{svm=\"%s\"} %d\n", svms[i].name,
		    svms[i].state == SVM_LIVE);
	one(b, "mux_svm_rejects_total", "counter", "SVM registrations refused (duplicate, not authorized, version).",
	    METRIC_GET(metrics.svm_rejects));
	one(b, "mux_svm_verdicts_ignored_total", "counter", "SvmVerdicts ignored (decided, not a decider, not reply_expected).",
	    METRIC_GET(metrics.svm_verdicts_ignored));
	one(b, "mux_svm_requests_total", "counter", "SVM file reads and remediations relayed to an agent.",
	    METRIC_GET(metrics.svm_requests));
	one(b, "mux_svm_requests_failed_total", "counter", "SVM requests answered with an error (ENOENT, EINVAL, ENOTCONN, ETIMEDOUT, EAGAIN).",
	    METRIC_GET(metrics.svm_requests_failed));
	one(b, "mux_svm_answers_dropped_total", "counter", "Answers for an SVM session that had gone.",
	    METRIC_GET(metrics.svm_answers_dropped));
	one(b, "mux_agent_answers_ignored_total", "counter", "FileData/ActionResult for an unknown or expired request.",
	    METRIC_GET(metrics.agent_answers_ignored));
	one(b, "mux_verdicts_orphaned_total", "counter", "Pending verdicts dropped because their agent connection closed.",
	    METRIC_GET(metrics.verdicts_orphaned));
	help(b, "mux_epoch_info", "gauge", "The daemon's epoch.");
	evbuffer_add_printf(b, "mux_epoch_info{epoch=\"%llu\",version=\"%s\"} 1\n",
	    (unsigned long long)mux->epoch, MUX_VERSION);
	free(svms);
}

static void
metrics_http_cb(struct evhttp_request *req, void *arg)
{
	struct mux *mux = arg;
	struct evbuffer *b;

	if (strcmp(evhttp_request_get_uri(req), "/metrics") != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, NULL);
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	metrics_render(mux, b);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	    "text/plain; version=0.0.4");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

int
metrics_http_start(struct mux *mux, char *err, size_t errlen)
{
	struct evhttp *http;
	char host[256];
	uint16_t port;

	if (mux->conf.metrics_listen[0] == '\0')
		return 0;
	if (parse_hostport(mux->conf.metrics_listen, host, sizeof(host), &port) == -1) {
		snprintf(err, errlen, "metrics listen '%s': expected host:port",
		    mux->conf.metrics_listen);
		return -1;
	}
	if ((http = evhttp_new(mux->main_base)) == NULL ||
	    evhttp_bind_socket(http, host, port) != 0) {
		snprintf(err, errlen, "metrics listen %s: cannot bind",
		    mux->conf.metrics_listen);
		return -1;
	}
	evhttp_set_gencb(http, metrics_http_cb, mux);
	log_info("metrics: serving http://%s/metrics", mux->conf.metrics_listen);
	return 0;
}
