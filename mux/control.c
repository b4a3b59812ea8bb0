/*
 * control.c: the control socket (docs/control-protocol.md) on the main
 * thread. Created the careful way: path length checked, a stale socket
 * unlinked only when nobody answers on it, mode 0600, peer credentials
 * checked, accept paused for a second on EMFILE. One request per
 * connection: a line in, the body and OK / FAIL reason out.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "mux.h"
#include "mux.pb-c.h"

#define CONTROL_LINE_MAX	1024
#define CONTROL_TIMEOUT_S	10
#define CONTROL_EMFILE_PAUSE_S	1

static struct evconnlistener *control_listener;
static struct event *control_resume_ev;
static char control_path[108];

static const char *const svm_state_names[] = {
	[SVM_IDLE] = "down", [SVM_CONNECTING] = "connecting",
	[SVM_REGISTERING] = "registering", [SVM_LIVE] = "up",
	[SVM_REMOVED] = "removed",
};

static const char *
state_name(enum svm_state s)
{
	return s <= SVM_REMOVED ? svm_state_names[s] : "?";
}

static void
copy_snap(struct mux *mux, struct snap_agent **ag, size_t *nag,
    struct snap_svm **sv, size_t *nsv)
{
	struct snap *s = &mux->snap;

	pthread_mutex_lock(&s->lock);
	*nag = s->nagents;
	*nsv = s->nsvms;
	*ag = calloc(*nag + 1, sizeof(**ag));
	*sv = calloc(*nsv + 1, sizeof(**sv));
	if (*ag == NULL || *sv == NULL)
		fatal("control");
	if (*nag > 0)
		memcpy(*ag, s->agents, *nag * sizeof(**ag));
	if (*nsv > 0)
		memcpy(*sv, s->svms, *nsv * sizeof(**sv));
	pthread_mutex_unlock(&s->lock);
}

static void
fmt_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
class_list(wire_class_mask m, char *buf, size_t len)
{
	int c;

	buf[0] = '\0';
	if (m == WIRE_CLASS_ALL) {
		snprintf(buf, len, "all");
		return;
	}
	for (c = 1; c <= WIRE_NCLASSES; c++)
		if (m & (1u << c)) {
			if (buf[0] != '\0')
				strncat(buf, ",", len - strlen(buf) - 1);
			strncat(buf, wire_class_name(c), len - strlen(buf) - 1);
		}
}

/* Alarms: computed ones first, then the recorded ones (newest last). */
static size_t
control_alarms(struct mux *mux, const struct snap_svm *sv, size_t nsv,
    char out[][192], size_t max)
{
	size_t n = 0, i, up = 0;
	struct snap *s = &mux->snap;
	char when[32];

	for (i = 0; i < nsv; i++)
		up += sv[i].state == SVM_LIVE;
	if (up == 0 && n < max)
		snprintf(out[n++], 192, "no SVM is up: events are retained only, "
		    "verdicts are defaults");
	if (mux->conf.from_last_good && n < max)
		snprintf(out[n++], 192, "running on the last-good configuration: %.140s",
		    mux->config_error);
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->nalarms && n < max; i++) {
		fmt_time(s->alarm_ns[i], when, sizeof(when));
		snprintf(out[n++], 192, "%s %s", when, s->alarms[i]);
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

static uint64_t
sum_perr(enum mux_link l)
{
	uint64_t n = 0;
	int p;

	for (p = 0; p < PERR__MAX; p++)
		n += METRIC_GET(metrics.proto_err[l][p]);
	return n;
}

#define STATUS_VMS_MAX	32	/* VM lines in `status`; `agents` has all */

struct vm_row {
	uint32_t	 cid;
	const char	*name;
	const char	*uuid;
	uint32_t	 conns;
	uint32_t	 pending;
	int		 protected;
};

static int
vm_row_cmp(const void *a, const void *b)
{
	const struct vm_row *x = a, *y = b;

	return x->cid < y->cid ? -1 : x->cid > y->cid;
}

/* Agents grouped by VM (welcomed connections only). */
static size_t
vm_rows(const struct snap_agent *ag, size_t nag, struct vm_row *rows)
{
	size_t n = 0, i, j;

	for (i = 0; i < nag; i++) {
		if (!ag[i].welcomed)
			continue;
		for (j = 0; j < n && rows[j].cid != ag[i].cid; j++)
			;
		if (j == n) {
			memset(&rows[n], 0, sizeof(rows[n]));
			rows[n].cid = ag[i].cid;
			rows[n].name = ag[i].vm_name;
			rows[n].uuid = ag[i].vm_uuid;
			n++;
		}
		rows[j].conns++;
		rows[j].pending += ag[i].pending;
		rows[j].protected |= ag[i].protected;
	}
	qsort(rows, n, sizeof(*rows), vm_row_cmp);
	return n;
}

static void
render_status(struct mux *mux, int json, struct evbuffer *b)
{
	struct snap_agent *ag;
	struct snap_svm *sv;
	size_t nag, nsv, i, up = 0, nal, welcomed = 0, nvm, nprot = 0;
	char alarms[ALARMS_MAX + 4][192], upt[32], cls[64];
	struct vm_row *rows;
	uint64_t ring_ev = ring_head_mc(&mux->ring) - ring_tail_mc(&mux->ring);
	uint64_t ring_b = atomic_load_explicit(&mux->ring.used_bytes,
	    memory_order_relaxed), gap_events = 0, lag_max = 0;

	copy_snap(mux, &ag, &nag, &sv, &nsv);
	if ((rows = calloc(nag + 1, sizeof(*rows))) == NULL)
		fatal("control");
	nvm = vm_rows(ag, nag, rows);
	for (i = 0; i < nvm; i++)
		nprot += rows[i].protected;
	for (i = 0; i < nsv; i++) {
		up += sv[i].state == SVM_LIVE;
		gap_events += sv[i].gap_events;
		if (sv[i].lag > lag_max)
			lag_max = sv[i].lag;
	}
	for (i = 0; i < nag; i++)
		welcomed += ag[i].welcomed;
	nal = control_alarms(mux, sv, nsv, alarms, ALARMS_MAX + 4);
	fmt_duration(mono_ns() - mux->start_mono, upt, sizeof(upt));
	if (json) {
		evbuffer_add_printf(b, "{\"version\":\"%s\",\"epoch\":%llu,\"host_id\":",
		    MUX_VERSION, (unsigned long long)mux->epoch);
		json_str(b, mux->conf.host_id);
		evbuffer_add_printf(b, ",\"uptime_s\":%llu,\"config\":",
		    (unsigned long long)((mono_ns() - mux->start_mono) / 1000000000u));
		json_str(b, mux->conf.source);
		evbuffer_add_printf(b, ",\"config_last_good\":%s,\"agents\":%zu,"
		    "\"svms\":%zu,\"svms_up\":%zu,\"events_in_per_s\":%llu,"
		    "\"events_out_per_s\":%llu,\"received\":%llu,\"delivered\":%llu,"
		    "\"next_seq\":%llu,\"oldest_seq\":%llu,"
		    "\"ring_events\":%llu,\"ring_events_max\":%llu,\"ring_bytes\":%llu,"
		    "\"ring_bytes_max\":%llu,\"ring_evicted\":%llu,\"lag_max\":%llu,"
		    "\"gap_events\":%llu,\"dropped\":{",
		    mux->conf.from_last_good ? "true" : "false", welcomed, nsv, up,
		    (unsigned long long)mux->rate_in, (unsigned long long)mux->rate_out,
		    (unsigned long long)metrics_received_total(),
		    (unsigned long long)fanout_delivered_total(),
		    (unsigned long long)ring_head_mc(&mux->ring),
		    (unsigned long long)ring_tail_mc(&mux->ring),
		    (unsigned long long)ring_ev, (unsigned long long)mux->ring.events,
		    (unsigned long long)ring_b, (unsigned long long)mux->ring.bytes,
		    (unsigned long long)atomic_load(&mux->ring.evicted),
		    (unsigned long long)lag_max, (unsigned long long)gap_events);
		for (i = 0; i < DROP__MAX; i++)
			evbuffer_add_printf(b, "%s\"%s\":%llu", i ? "," : "",
			    metrics_drop_name(i),
			    (unsigned long long)METRIC_GET(metrics.dropped[i]));
		evbuffer_add_printf(b, "},\"protocol_errors\":{\"agent\":%llu,"
		    "\"svm\":%llu},\"vms_protected\":%zu,\"vms\":[",
		    (unsigned long long)sum_perr(LINK_AGENT),
		    (unsigned long long)sum_perr(LINK_SVM), nprot);
		for (i = 0; i < nvm; i++) {
			evbuffer_add_printf(b, "%s{\"cid\":%u,\"vm_name\":", i ? "," : "",
			    rows[i].cid);
			json_str(b, rows[i].name);
			evbuffer_add_printf(b, ",\"connections\":%u,\"pending_verdicts\":%u,"
			    "\"protected\":%s}", rows[i].conns, rows[i].pending,
			    rows[i].protected ? "true" : "false");
		}
		evbuffer_add_printf(b, "],\"alarms\":[");
		for (i = 0; i < nal; i++) {
			if (i)
				evbuffer_add(b, ",", 1);
			json_str(b, alarms[i]);
		}
		evbuffer_add_printf(b, "]}\n");
		goto out;
	}
	evbuffer_add_printf(b, "muxd %s  host %s  epoch %016llx  up %s\n",
	    MUX_VERSION, mux->conf.host_id, (unsigned long long)mux->epoch, upt);
	evbuffer_add_printf(b, "config    %s%s\n",
	    mux->conf.source[0] ? mux->conf.source : "(built-in defaults)",
	    mux->conf.from_last_good ? "  (LAST-GOOD COPY)" : "");
	evbuffer_add_printf(b, "agents    %zu connected, %llu sessions since start\n",
	    welcomed, (unsigned long long)METRIC_GET(metrics.agent_sessions_total));
	evbuffer_add_printf(b, "vms       %zu connected, %zu protected (an up SVM "
	    "gives their verdicts)\n", nvm, nprot);
	for (i = 0; i < nvm && i < STATUS_VMS_MAX; i++)
		evbuffer_add_printf(b, "  cid %-10u %-20s conns %-3u pending %-6u %s\n",
		    rows[i].cid, rows[i].name[0] ? rows[i].name : "-", rows[i].conns,
		    rows[i].pending, rows[i].protected ? "protected" :
		    "UNPROTECTED (default verdicts)");
	if (nvm > STATUS_VMS_MAX)
		evbuffer_add_printf(b, "  ... and %zu more (muxctl agents)\n",
		    nvm - STATUS_VMS_MAX);
	evbuffer_add_printf(b, "svms      %zu/%zu up\n", up, nsv);
	for (i = 0; i < nsv; i++) {
		class_list(sv[i].classes, cls, sizeof(cls));
		evbuffer_add_printf(b, "  %-12s %-11s %-21s lag %-8llu in-flight %llu/%u  %s\n",
		    sv[i].name, state_name(sv[i].state), sv[i].address,
		    (unsigned long long)sv[i].lag, (unsigned long long)sv[i].inflight,
		    sv[i].window, sv[i].state == SVM_LIVE ? cls : sv[i].last_error);
	}
	evbuffer_add_printf(b, "events    in %llu/s  out %llu/s  (received %llu, "
	    "delivered %llu, next seq %llu)\n", (unsigned long long)mux->rate_in,
	    (unsigned long long)mux->rate_out,
	    (unsigned long long)metrics_received_total(),
	    (unsigned long long)fanout_delivered_total(),
	    (unsigned long long)ring_head_mc(&mux->ring));
	evbuffer_add_printf(b, "ring      %llu/%llu events, %.1f/%.1f MiB (%.0f%%), "
	    "evicted %llu\n", (unsigned long long)ring_ev,
	    (unsigned long long)mux->ring.events, (double)ring_b / 1048576.0,
	    (double)mux->ring.bytes / 1048576.0,
	    100.0 * (double)ring_b / (double)mux->ring.bytes,
	    (unsigned long long)atomic_load(&mux->ring.evicted));
	evbuffer_add_printf(b, "drops     rate %llu  pending %llu  conn_limit %llu  "
	    "gap events %llu\n",
	    (unsigned long long)METRIC_GET(metrics.dropped[DROP_RATE]),
	    (unsigned long long)METRIC_GET(metrics.dropped[DROP_PENDING]),
	    (unsigned long long)METRIC_GET(metrics.dropped[DROP_CONN_LIMIT]),
	    (unsigned long long)gap_events);
	evbuffer_add_printf(b, "verdicts  allow %llu  deny %llu  (default %llu)  "
	    "timeouts %llu\n",
	    (unsigned long long)(METRIC_GET(metrics.verdicts[1][0]) +
	    METRIC_GET(metrics.verdicts[1][1])),
	    (unsigned long long)(METRIC_GET(metrics.verdicts[2][0]) +
	    METRIC_GET(metrics.verdicts[2][1])),
	    (unsigned long long)(METRIC_GET(metrics.verdicts[1][1]) +
	    METRIC_GET(metrics.verdicts[2][1])),
	    (unsigned long long)METRIC_GET(metrics.verdict_timeouts));
	evbuffer_add_printf(b, "errors    agent protocol %llu  svm protocol %llu  "
	    "identity mismatch %llu\n", (unsigned long long)sum_perr(LINK_AGENT),
	    (unsigned long long)sum_perr(LINK_SVM),
	    (unsigned long long)METRIC_GET(metrics.identity_mismatch));
	if (nal == 0)
		evbuffer_add_printf(b, "alarms    none\n");
	for (i = 0; i < nal; i++)
		evbuffer_add_printf(b, "ALARM     %s\n", alarms[i]);
out:
	free(rows);
	free(ag);
	free(sv);
}

static void
render_agents(struct mux *mux, int json, struct evbuffer *b)
{
	struct snap_agent *ag;
	struct snap_svm *sv;
	size_t nag, nsv, i;
	char when[32];

	copy_snap(mux, &ag, &nag, &sv, &nsv);
	if (json)
		evbuffer_add(b, "[", 1);
	else
		evbuffer_add_printf(b, "%-8s %-10s %-36s %-16s %-20s %-8s %10s %9s %s\n",
		    "SESSION", "CID", "VM_UUID", "VM_NAME", "AGENT", "OS", "EVENTS",
		    "VERDICTS", "SINCE");
	for (i = 0; i < nag; i++) {
		fmt_time(ag[i].connected_ns, when, sizeof(when));
		if (json) {
			evbuffer_add_printf(b, "%s{\"session\":%llu,\"cid\":%u,"
			    "\"welcomed\":%s,\"vm_uuid\":", i ? "," : "",
			    (unsigned long long)ag[i].session, ag[i].cid,
			    ag[i].welcomed ? "true" : "false");
			json_str(b, ag[i].vm_uuid);
			evbuffer_add_printf(b, ",\"vm_name\":");
			json_str(b, ag[i].vm_name);
			evbuffer_add_printf(b, ",\"claimed_vm_uuid\":");
			json_str(b, ag[i].claimed_uuid);
			evbuffer_add_printf(b, ",\"agent_version\":");
			json_str(b, ag[i].agent_version);
			evbuffer_add_printf(b, ",\"os\":");
			json_str(b, ag[i].os);
			evbuffer_add_printf(b, ",\"events\":%llu,\"verdicts\":%llu,"
			    "\"since\":\"%s\"}", (unsigned long long)ag[i].events,
			    (unsigned long long)ag[i].verdicts, when);
		} else
			evbuffer_add_printf(b, "%-8llu %-10u %-36s %-16s %-20s %-8s %10llu %9llu %s\n",
			    (unsigned long long)ag[i].session, ag[i].cid,
			    ag[i].vm_uuid[0] ? ag[i].vm_uuid : "-",
			    ag[i].vm_name[0] ? ag[i].vm_name : "-",
			    ag[i].welcomed ? ag[i].agent_version : "(hello pending)",
			    ag[i].os[0] ? ag[i].os : "-",
			    (unsigned long long)ag[i].events,
			    (unsigned long long)ag[i].verdicts, when);
	}
	if (json)
		evbuffer_add(b, "]\n", 2);
	free(ag);
	free(sv);
}

static void
render_svms(struct mux *mux, int json, struct evbuffer *b)
{
	struct snap_agent *ag;
	struct snap_svm *sv;
	size_t nag, nsv, i;
	char cls[64], when[32];

	copy_snap(mux, &ag, &nag, &sv, &nsv);
	if (json)
		evbuffer_add(b, "[", 1);
	else
		evbuffer_add_printf(b, "%-12s %-21s %-14s %-16s %-11s %-22s %8s %11s %12s %6s %10s %s\n",
		    "NAME", "ADDRESS", "SERVICE", "INSTANCE", "STATE", "CLASSES", "LAG",
		    "IN-FLIGHT", "DELIVERED", "GAPS", "GAP_EVTS", "LAST_ERROR");
	for (i = 0; i < nsv; i++) {
		class_list(sv[i].classes, cls, sizeof(cls));
		fmt_time(sv[i].since_ns, when, sizeof(when));
		if (json) {
			evbuffer_add_printf(b, "%s{\"name\":", i ? "," : "");
			json_str(b, sv[i].name);
			evbuffer_add_printf(b, ",\"address\":");
			json_str(b, sv[i].address);
			evbuffer_add_printf(b, ",\"service_id\":");
			json_str(b, sv[i].service_id);
			evbuffer_add_printf(b, ",\"instance_id\":");
			json_str(b, sv[i].instance_id);
			evbuffer_add_printf(b, ",\"state\":\"%s\",\"since\":\"%s\","
			    "\"tls\":%s,\"verdicts\":%s,\"classes\":\"%s\",\"vm_cids\":%u,"
			    "\"window\":%u,\"cursor\":%llu,\"acked\":%llu,\"in_flight\":%llu,"
			    "\"lag\":%llu,\"delivered\":%llu,\"batches\":%llu,\"gaps\":%llu,"
			    "\"gap_events\":%llu,\"connects\":%llu,\"rejects\":%llu,"
			    "\"last_error\":", state_name(sv[i].state), when,
			    sv[i].tls ? "true" : "false", sv[i].verdicts ? "true" : "false",
			    cls, sv[i].ncids, sv[i].window,
			    (unsigned long long)sv[i].cursor, (unsigned long long)sv[i].acked,
			    (unsigned long long)sv[i].inflight, (unsigned long long)sv[i].lag,
			    (unsigned long long)sv[i].delivered,
			    (unsigned long long)sv[i].batches, (unsigned long long)sv[i].gaps,
			    (unsigned long long)sv[i].gap_events,
			    (unsigned long long)sv[i].connects,
			    (unsigned long long)sv[i].rejects);
			json_str(b, sv[i].last_error);
			evbuffer_add(b, "}", 1);
		} else
			evbuffer_add_printf(b, "%-12s %-21s %-14s %-16s %-11s %-22s %8llu %5llu/%-5u %12llu %6llu %10llu %s\n",
			    sv[i].name, sv[i].address, sv[i].service_id,
			    sv[i].instance_id[0] ? sv[i].instance_id : "-",
			    state_name(sv[i].state), sv[i].state == SVM_LIVE ? cls : "-",
			    (unsigned long long)sv[i].lag, (unsigned long long)sv[i].inflight,
			    sv[i].window, (unsigned long long)sv[i].delivered,
			    (unsigned long long)sv[i].gaps,
			    (unsigned long long)sv[i].gap_events,
			    sv[i].last_error[0] ? sv[i].last_error : "-");
	}
	if (json)
		evbuffer_add(b, "]\n", 2);
	free(ag);
	free(sv);
}

static int
control_cid(const char *s, uint32_t *cid)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || s[0] < '0' || s[0] > '9' ||
	    v < 3 || v > 4294967294ul)
		return -1;
	*cid = (uint32_t)v;
	return 0;
}

/* vm map CID UUID NAME...: the host's identity for a CID, from now on. */
static void
control_vm_map(struct mux *mux, int argc, char **argv, struct evbuffer *out,
    char *fail, size_t faillen)
{
	struct mbox_msg *m;
	uint32_t cid;
	size_t len = 0;
	int i;

	if (control_cid(argv[2], &cid) == -1) {
		snprintf(fail, faillen, "bad CID '%s' (3..4294967294)", argv[2]);
		return;
	}
	if (strlen(argv[3]) >= sizeof(m->vm_uuid)) {
		snprintf(fail, faillen, "UUID too long");
		return;
	}
	m = mbox_msg_new(MBOX_VM_MAP, 0);
	m->cid = cid;
	snprintf(m->vm_uuid, sizeof(m->vm_uuid), "%s", argv[3]);
	for (i = 4; i < argc; i++) {
		int n = snprintf(m->vm_name + len, sizeof(m->vm_name) - len, "%s%s",
		    i > 4 ? " " : "", argv[i]);

		if (n < 0 || (size_t)n >= sizeof(m->vm_name) - len) {
			free(m);
			snprintf(fail, faillen, "NAME too long");
			return;
		}
		len += (size_t)n;
	}
	log_info("control: vm map cid=%u uuid=%s name=%s", cid, argv[3], m->vm_name);
	evbuffer_add_printf(out, "cid %u mapped to %s (%s)\n", cid, argv[3],
	    m->vm_name);
	/* Posted last: from here on the ingest thread owns (and frees) m. */
	mbox_post(&mux->to_ingest, m);
}

static const struct {
	const char	*name;
	int		 op;		/* Mux__VmEvent__Op */
	int		 state;		/* Mux__VmStatus__State, or 0 */
} control_vm_states[] = {
	{ "powered_on", MUX__VM_EVENT__OP__POWERED_ON, MUX__VM_STATUS__STATE__POWERED_ON },
	{ "powered_off", MUX__VM_EVENT__OP__POWERED_OFF, MUX__VM_STATUS__STATE__POWERED_OFF },
	{ "suspended", MUX__VM_EVENT__OP__SUSPENDED, MUX__VM_STATUS__STATE__SUSPENDED },
	{ "resumed", MUX__VM_EVENT__OP__RESUMED, 0 },
	{ "migrated_in", MUX__VM_EVENT__OP__MIGRATED_IN, 0 },
	{ "migrated_out", MUX__VM_EVENT__OP__MIGRATED_OUT, MUX__VM_STATUS__STATE__MIGRATED_OUT },
	{ "guest_shutdown", MUX__VM_EVENT__OP__GUEST_SHUTDOWN, 0 },
};

/* vm event CID STATE: a state the host reports, made into a VmEvent. */
static void
control_vm_event(struct mux *mux, const char *cids, const char *state,
    struct evbuffer *out, char *fail, size_t faillen)
{
	struct mbox_msg *m;
	uint32_t cid;
	size_t i, n = sizeof(control_vm_states) / sizeof(control_vm_states[0]);

	if (control_cid(cids, &cid) == -1) {
		snprintf(fail, faillen, "bad CID '%s' (3..4294967294)", cids);
		return;
	}
	for (i = 0; i < n && strcasecmp(state, control_vm_states[i].name) != 0; i++)
		;
	if (i == n) {
		snprintf(fail, faillen, "unknown state '%s' (powered_on, powered_off, "
		    "suspended, resumed, migrated_in, migrated_out, guest_shutdown)",
		    state);
		return;
	}
	m = mbox_msg_new(MBOX_VM_EVENT, 0);
	m->cid = cid;
	m->state = control_vm_states[i].op;
	m->len = (size_t)control_vm_states[i].state;	/* VmStatus state, 0: none */
	mbox_post(&mux->to_ingest, m);
	log_info("control: vm event cid=%u %s", cid, control_vm_states[i].name);
	evbuffer_add_printf(out, "cid %u %s\n", cid, control_vm_states[i].name);
}

/* svm add NAME ADDRESS [key=value ...]: as an [svm NAME] section would. */
static void
control_svm_add(struct mux *mux, int argc, char **argv, struct evbuffer *out,
    char *fail, size_t faillen)
{
	struct config_svm c;
	char *eq;
	int i;

	if (config_svm_init(&c, argv[2], fail, faillen) == -1 ||
	    config_svm_set(&c, "address", argv[3], fail, faillen) == -1)
		return;
	for (i = 4; i < argc; i++) {
		if ((eq = strchr(argv[i], '=')) == NULL) {
			snprintf(fail, faillen, "'%s': expected key=value", argv[i]);
			return;
		}
		*eq = '\0';
		if (config_svm_set(&c, argv[i], eq + 1, fail, faillen) == -1)
			return;
	}
	if (config_svm_check(&c, fail, faillen) == -1 ||
	    reload_svm_add(mux, &c, fail, faillen) == -1)
		return;
	evbuffer_add_printf(out, "svm %s added: %s, service %s, tls %s\n", c.name,
	    c.address, c.service_id, c.tls ? "on" : "off");
}

/*
 * Runs one command. On failure fills `fail` (the reply is then FAIL).
 * Exposed for the unit tests.
 */
void
control_render(struct mux *mux, const char *cmd, int json, struct evbuffer *out,
    char *fail, size_t faillen)
{
	char buf[CONTROL_LINE_MAX], *argv[16], *save = NULL, *tok;
	enum log_level lvl;
	int argc = 0;

	fail[0] = '\0';
	snprintf(buf, sizeof(buf), "%s", cmd);
	for (tok = strtok_r(buf, " ", &save); tok != NULL && argc < 16;
	    tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	if (argc == 0) {
		snprintf(fail, faillen, "empty command");
		return;
	}
	if (strcmp(argv[0], "status") == 0 && argc == 1)
		render_status(mux, json, out);
	else if (strcmp(argv[0], "agents") == 0 && argc == 1)
		render_agents(mux, json, out);
	else if (strcmp(argv[0], "svms") == 0 && argc == 1)
		render_svms(mux, json, out);
	else if (strcmp(argv[0], "metrics") == 0 && argc == 1)
		metrics_render(mux, out);
	else if (strcmp(argv[0], "log") == 0 && argc >= 3 &&
	    strcmp(argv[1], "level") == 0) {
		if (config_log_level_parse(argv[2], &lvl) == -1) {
			snprintf(fail, faillen, "unknown log level '%s' (off, error, "
			    "warn, info, debug, trace)", argv[2]);
			return;
		}
		if (argc > 3) {
			snprintf(fail, faillen, "per-subsystem log levels are not "
			    "supported yet; omit SUBSYSTEM");
			return;
		}
		log_set_level(lvl);
		log_info("control: log level set to %s", argv[2]);
		evbuffer_add_printf(out, "log level %s\n", argv[2]);
	} else if (strcmp(argv[0], "vm") == 0 && argc >= 5 &&
	    strcmp(argv[1], "map") == 0) {
		control_vm_map(mux, argc, argv, out, fail, faillen);
	} else if (strcmp(argv[0], "vm") == 0 && argc == 4 &&
	    strcmp(argv[1], "event") == 0) {
		control_vm_event(mux, argv[2], argv[3], out, fail, faillen);
	} else if (strcmp(argv[0], "reload") == 0 && argc == 1) {
		reload_config(mux, out, fail, faillen);
	} else if (strcmp(argv[0], "svm") == 0 && argc >= 4 &&
	    strcmp(argv[1], "add") == 0) {
		control_svm_add(mux, argc, argv, out, fail, faillen);
	} else if (strcmp(argv[0], "svm") == 0 && argc == 3 &&
	    strcmp(argv[1], "remove") == 0) {
		if (reload_svm_remove(mux, argv[2], fail, faillen) == 0)
			evbuffer_add_printf(out, "svm %s removed\n", argv[2]);
	}
	else
		snprintf(fail, faillen, "unknown command or wrong arguments: %s", cmd);
}

static void
control_conn_close(struct bufferevent *bev)
{
	bufferevent_free(bev);
}

static void
control_write_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		control_conn_close(bev);
}

static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	struct mux *mux = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	char fail[256], *line, *cmd;
	size_t n;
	int json;

	line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX) {
			metrics_proto_error(LINK_CONTROL, PERR_FRAME_TOO_BIG);
			log_warnx("control: request line too long; closed");
			control_conn_close(bev);
		}
		return;
	}
	bufferevent_disable(bev, EV_READ);
	if (strncmp(line, "json ", 5) == 0) {
		json = 1;
		cmd = line + 5;
	} else if (strncmp(line, "text ", 5) == 0) {
		json = 0;
		cmd = line + 5;
	} else {
		metrics_proto_error(LINK_CONTROL, PERR_DECODE);
		evbuffer_add_printf(out, "FAIL request must start with 'text ' or 'json '\n");
		free(line);
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	log_debug("control: %s%s", cmd, json ? " (json)" : "");
	control_render(mux, cmd, json, out, fail, sizeof(fail));
	if (fail[0] != '\0')
		evbuffer_add_printf(out, "FAIL %s\n", fail);
	else
		evbuffer_add_printf(out, "OK\n");
	free(line);
	bufferevent_enable(bev, EV_WRITE);
}

static void
control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	control_conn_close(bev);
}

static void
control_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct mux *mux = arg;
	struct bufferevent *bev;
	struct timeval tv = { CONTROL_TIMEOUT_S, 0 };
	struct ucred cred;
	socklen_t len = sizeof(cred);

	(void)l;
	(void)sa;
	(void)salen;
	/* Owner only: root, or the user muxd runs as. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		log_warnx("control: refused a client with uid %ld",
		    (long)cred.uid);
		close(fd);
		return;
	}
	bev = bufferevent_socket_new(mux->main_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, control_read_cb, control_write_cb, control_event_cb, mux);
	bufferevent_set_timeouts(bev, &tv, &tv);
	/* EV_WRITE only once a reply is queued: the write callback closes. */
	bufferevent_enable(bev, EV_READ);
}

static void
control_resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	evconnlistener_enable(control_listener);
}

static void
control_error_cb(struct evconnlistener *l, void *arg)
{
	struct timeval tv = { CONTROL_EMFILE_PAUSE_S, 0 };
	int e = EVUTIL_SOCKET_ERROR();

	(void)arg;
	if (e == EMFILE || e == ENFILE) {
		log_warnx("control: accept: %s; pausing for %d s", strerror(e),
		    CONTROL_EMFILE_PAUSE_S);
		evconnlistener_disable(l);
		evtimer_add(control_resume_ev, &tv);
	} else
		log_warnx("control: accept: %s", strerror(e));
}

int
control_start(struct mux *mux, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd, probe;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(mux->conf.control_path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control_path too long: %s", mux->conf.control_path);
		return -1;
	}
	strcpy(sun.sun_path, mux->conf.control_path);
	snprintf(control_path, sizeof(control_path), "%s", mux->conf.control_path);
	/* A socket left by a dead muxd is removed; a live one is not. */
	if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) != -1) {
		if (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			snprintf(err, errlen, "%s: another muxd is running", sun.sun_path);
			return -1;
		}
		close(probe);
	}
	if (unlink(sun.sun_path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: unlink: %s", sun.sun_path, strerror(errno));
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0177);	/* mode 0600 from the start, no window */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		snprintf(err, errlen, "%s: bind: %s", sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(sun.sun_path, 0600) == -1 || listen(fd, 16) == -1) {
		snprintf(err, errlen, "%s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	control_listener = evconnlistener_new(mux->main_base, control_accept_cb, mux,
	    LEV_OPT_CLOSE_ON_FREE, -1, fd);
	control_resume_ev = evtimer_new(mux->main_base, control_resume_cb, NULL);
	if (control_listener == NULL || control_resume_ev == NULL) {
		snprintf(err, errlen, "control: listener");
		return -1;
	}
	evconnlistener_set_error_cb(control_listener, control_error_cb);
	log_info("control: listening on %s", sun.sun_path);
	return 0;
}

void
control_stop(void)
{
	if (control_listener != NULL) {
		evconnlistener_free(control_listener);
		control_listener = NULL;
		unlink(control_path);
	}
	if (control_resume_ev != NULL) {
		event_free(control_resume_ev);
		control_resume_ev = NULL;
	}
}
