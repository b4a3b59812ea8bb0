/*
 * agent.c: one simulated agent connection.
 *
 *   IDLE --dial--> HELLO --AgentWelcome--> WELCOMED --SolutionState--> RUNNING
 *     ^                                                                  |
 *     +--- 200 ms (--reconnect) <-- CLOSING <-- close, Reject, error ----+
 *
 * A connection is never freed inside its own callback: closing marks it
 * CLOSING and arms its timer at zero; the timer frees the bufferevent and
 * then either redials (--reconnect, still in the run) or stops (DONE).
 *
 * What counts as an error (see enum lg_err): anything the MUX does that the
 * protocol does not allow. A close by the MUX is one too, except with
 * --reconnect, where a daemon restart is what the run is there to survive;
 * it is then only counted in `disconnects`.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "frame_ev.h"
#include "loadgen.h"

static const char *const agent_reject_names[] = {
	"CODE_UNSPECIFIED", "VERSION_MISMATCH", "NOT_AUTHORIZED", "DUPLICATE",
	"BAD_REQUEST", "OVERLOADED"
};

static void	agent_dial(struct agent *);
static void	agent_log(struct agent *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* One line naming the connection first, as muxd's logs do. */
static void
agent_log(struct agent *a, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (a->session_id != 0)
		loadgen_log("agent cid=%u conn=%u session=%llu: %s", a->cid,
		    a->conn, (unsigned long long)a->session_id, msg);
	else
		loadgen_log("agent cid=%u conn=%u: %s", a->cid, a->conn, msg);
}

static void
agent_set_state(struct agent *a, enum agent_state st)
{
	a->state = st;
	a->state_ns = loadgen_now_ns();
}

static void
agent_arm(struct agent *a, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(a->timer, &tv);
}

static const char *
agent_reject_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof(agent_reject_names) /
	    sizeof(agent_reject_names[0]))
		return "unknown";
	return agent_reject_names[code];
}

/*
 * Stop this connection. kind is the error to count, or LG_ERR_COUNT for a
 * close that is no error. Everything is torn down later from the timer.
 */
static void
agent_close(struct agent *a, enum lg_err kind, const char *why)
{
	if (a->state == AGENT_CLOSING || a->state == AGENT_DONE)
		return;
	if (kind != LG_ERR_COUNT) {
		stats_error(kind);
		a->had_error = 1;
		agent_log(a, "%s", why);
	}
	if (a->bev != NULL)
		bufferevent_disable(a->bev, EV_READ | EV_WRITE);
	agent_set_state(a, AGENT_CLOSING);
	agent_arm(a, 0);
}

/* The MUX broke the contract: count it and hang up, as muxd would. */
static void
agent_violation(struct agent *a, enum lg_err kind, const char *what)
{
	char why[160];

	snprintf(why, sizeof(why), "protocol violation: %s", what);
	agent_close(a, kind, why);
}

/* --verdict-log word: never empty, no blanks inside ("-" for nothing). */
static void
agent_log_word(const char *w)
{
	const unsigned char *p = (const unsigned char *)w;

	if (p == NULL || *p == '\0') {
		putc('-', lg_verdict_log);
		return;
	}
	for (; *p != '\0'; p++)
		putc(*p <= ' ' || *p == 0x7f ? '_' : *p, lg_verdict_log);
}

/* The path column: FileEvent.path (unpadded), ProcessEvent.path, or "-". */
static void
agent_log_path(const struct pending_ent *e)
{
	char path[128];

	if (e->cls == MUX__EVENT_CLASS__FILE) {
		content_base_path(e->what.file_id, path, sizeof(path));
		agent_log_word(path);
	} else if (e->cls == MUX__EVENT_CLASS__PROCESS)
		agent_log_word(e->what.path);
	else
		agent_log_word(NULL);
}

/*
 * `cid session event_id class path action reason timed_out latency_us
 * service_id`, one line per verdict.
 */
static void
agent_log_verdict(struct agent *a, const struct pending_ent *e,
    const Mux__Verdict *v, uint64_t lat)
{
	fprintf(lg_verdict_log, "%u %llu %llu %s ", a->cid,
	    (unsigned long long)a->session_id,
	    (unsigned long long)v->event_id, wire_class_name(e->cls));
	agent_log_path(e);
	fputs(v->action == MUX__ACTION__ALLOW ? " ALLOW " : " DENY ",
	    lg_verdict_log);
	agent_log_word(v->reason);
	fprintf(lg_verdict_log, " %d %llu ", v->timed_out ? 1 : 0,
	    (unsigned long long)(lat / 1000));
	agent_log_word(v->service_id);
	putc('\n', lg_verdict_log);
}

/* pending_clear callback: arg is "MISSING" or "LOST" and the agent. */
struct agent_unanswered {
	struct agent	*a;
	const char	*tag;
};

static void
agent_log_unanswered(const struct pending_ent *e, void *arg)
{
	const struct agent_unanswered *u = arg;

	fprintf(lg_verdict_log, "%s %u %llu %llu\n", u->tag, u->a->cid,
	    (unsigned long long)u->a->session_id,
	    (unsigned long long)e->event_id);
}

/* Pending verdicts of a closed connection: the MUX owes them no more. */
static void
agent_lost(struct agent *a)
{
	struct agent_unanswered u = { a, "LOST" };
	uint32_t n;

	n = pending_clear(&a->pending, lg_verdict_log != NULL ?
	    agent_log_unanswered : NULL, &u);
	lg_stats.lost_on_close += n;
	a->vm->lost_on_close += n;
}

/* Deferred part of a close, and the redial after it. */
static void
agent_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct agent *a = arg;

	switch (a->state) {
	case AGENT_CLOSING:
		if (a->bev != NULL) {
			bufferevent_free(a->bev);
			a->bev = NULL;
		}
		agent_lost(a);
		a->reserved = 0;
		frame_arena_reset(&a->arena);
		if (lg_opts.reconnect && lg_phase <= LG_RUN && !a->no_redial) {
			agent_set_state(a, AGENT_IDLE);
			agent_arm(a, LG_REDIAL_MS);
		} else
			agent_set_state(a, AGENT_DONE);
		break;
	case AGENT_IDLE:
		if (lg_phase > LG_RUN) {
			agent_set_state(a, AGENT_DONE);
			break;
		}
		lg_stats.redials++;
		agent_dial(a);
		break;
	default:
		break;
	}
}

int
agent_send(struct agent *a, Mux__AgentMessage *m)
{
	if (a->bev == NULL || a->state == AGENT_CLOSING)
		return -1;
	if (frame_ev_send(bufferevent_get_output(a->bev), &m->base,
	    a->max_frame) == -1) {
		stats_error(LG_ERR_SEND);
		agent_log(a, "cannot queue a frame (larger than max_frame %u?)",
		    a->max_frame);
		return -1;
	}
	a->last_send_ns = loadgen_now_ns();
	return 0;
}

static void
agent_send_hello(struct agent *a)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__AgentHello h = MUX__AGENT_HELLO__INIT;
	Mux__EventClass caps[WIRE_NCLASSES];
	int i;

	for (i = 0; i < WIRE_NCLASSES; i++)
		caps[i] = (Mux__EventClass)(MUX__EVENT_CLASS__FILE + i);
	h.protocol_version = WIRE_PROTOCOL_VERSION;
	h.agent_version = (char *)LG_AGENT_VERSION;
	h.os = (char *)"linux";
	h.claimed_vm_uuid = a->uuid;
	h.n_capabilities = WIRE_NCLASSES;
	h.capabilities = caps;
	m.msg_case = MUX__AGENT_MESSAGE__MSG_HELLO;
	m.hello = &h;
	agent_send(a, &m);
}

static void
agent_send_heartbeat(struct agent *a)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__Heartbeat hb = MUX__HEARTBEAT__INIT;

	hb.time_ns = loadgen_realtime_ns();
	m.msg_case = MUX__AGENT_MESSAGE__MSG_HEARTBEAT;
	m.heartbeat = &hb;
	if (agent_send(a, &m) == 0)
		lg_stats.heartbeats_sent++;
}

static void
agent_on_welcome(struct agent *a, const Mux__AgentWelcome *w)
{
	char why[128];

	if (a->state != AGENT_HELLO) {
		agent_violation(a, LG_ERR_PROTOCOL, "second AgentWelcome");
		return;
	}
	if (w->protocol_version != WIRE_PROTOCOL_VERSION) {
		snprintf(why, sizeof(why), "welcome with protocol_version %u",
		    w->protocol_version);
		agent_violation(a, LG_ERR_PROTOCOL, why);
		return;
	}
	a->session_id = w->session_id;
	a->max_frame = w->max_frame != 0 ? w->max_frame :
	    FRAME_AGENT_MAX_DEFAULT;
	a->heartbeat_ms = w->heartbeat_ms != 0 ? w->heartbeat_ms :
	    LG_HEARTBEAT_MS_DEFAULT;
	a->verdict_timeout_ms = w->verdict_timeout_ms != 0 ?
	    w->verdict_timeout_ms : LG_VERDICT_TIMEOUT_DEFAULT;
	/* Over vsock the kernel picks our CID; only unix: lets us choose. */
	if (w->cid != a->cid && lg_opts.addr.backend == VMCI_UNIX)
		agent_log(a, "welcome names cid %u", w->cid);
	lg_stats.sessions++;
	if (!a->welcomed_once)
		lg_stats.connections++;
	a->welcomed_once = 1;
	a->next_event_id = 1;	/* ids restart with every connection */
	a->solution_gen = 0;
	if ((size_t)lg_opts.payload + LG_FRAME_SLACK > a->max_frame) {
		snprintf(why, sizeof(why), "--payload %u does not fit max_frame "
		    "%u", lg_opts.payload, a->max_frame);
		a->no_redial = 1;
		agent_close(a, LG_ERR_SEND, why);
		return;
	}
	agent_set_state(a, AGENT_WELCOMED);
}

/* "av(up,verdicts) idfw(down)": what the agents were told, for the report. */
static void
agent_describe_solutions(const Mux__SolutionState *s, char *buf, size_t len)
{
	const Mux__Solution *so;
	size_t i, off = 0;
	int n;

	buf[0] = '\0';
	for (i = 0; i < s->n_solutions && off < len; i++) {
		so = s->solutions[i];
		n = snprintf(buf + off, len - off, "%s%s(%s%s)", i ? " " : "",
		    so->service_id, so->up ? "up" : "down",
		    so->verdicts ? ",verdicts" : "");
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

static void
agent_on_solutions(struct agent *a, const Mux__SolutionState *s)
{
	if (a->state != AGENT_WELCOMED && a->state != AGENT_RUNNING) {
		agent_violation(a, LG_ERR_PROTOCOL,
		    "SolutionState before welcome");
		return;
	}
	/* Full state with a generation that only grows within a session. */
	if (a->state == AGENT_RUNNING && s->generation < a->solution_gen) {
		agent_violation(a, LG_ERR_PROTOCOL,
		    "SolutionState generation went back");
		return;
	}
	a->solution_gen = s->generation;
	if (s->generation >= lg_stats.solution_generation) {
		lg_stats.solution_generation = s->generation;
		agent_describe_solutions(s, lg_stats.solutions,
		    sizeof(lg_stats.solutions));
	}
	lg_stats.solution_updates++;
	if (a->state == AGENT_WELCOMED)
		agent_set_state(a, AGENT_RUNNING);
}

static void
agent_on_verdict(struct agent *a, const Mux__Verdict *v, uint64_t now)
{
	struct pending_ent pe;
	uint64_t lat;

	if (a->state != AGENT_RUNNING) {
		agent_violation(a, LG_ERR_PROTOCOL,
		    "Verdict before SolutionState");
		return;
	}
	if (v->action != MUX__ACTION__ALLOW && v->action != MUX__ACTION__DENY) {
		agent_violation(a, LG_ERR_PROTOCOL, "Verdict with a bad action");
		return;
	}
	if (pending_take(&a->pending, v->event_id, &pe) == -1) {
		stats_error(LG_ERR_VERDICT);
		agent_log(a, "verdict for event %llu that is not pending",
		    (unsigned long long)v->event_id);
		return;
	}
	lat = now > pe.sent_ns ? now - pe.sent_ns : 0;
	/*
	 * Sent before the MUX ingested it, so this latency is an upper bound
	 * of the MUX's: below the timeout it certainly came early.
	 */
	if (v->timed_out && lat < (uint64_t)a->verdict_timeout_ms * 1000000) {
		stats_error(LG_ERR_EARLY_TIMEOUT);
		agent_log(a, "event %llu timed out after %llu ms, before "
		    "verdict_timeout_ms %u", (unsigned long long)v->event_id,
		    (unsigned long long)(lat / 1000000), a->verdict_timeout_ms);
	}
	stats_verdict(a->vm, v->action, v->reason, v->timed_out, lat);
	if (lg_verdict_log != NULL)
		agent_log_verdict(a, &pe, v, lat);
}

static void
agent_on_read_file(struct agent *a, const Mux__ReadFileRequest *rq)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__FileData fd = MUX__FILE_DATA__INIT;
	uint8_t buf[WIRE_READ_MAX];
	uint32_t len = rq->length, room;
	int eof = 0;

	if (a->state != AGENT_RUNNING) {
		agent_violation(a, LG_ERR_PROTOCOL, "ReadFileRequest before "
		    "SolutionState");
		return;
	}
	lg_stats.file_reads++;
	fd.request_id = rq->request_id;
	fd.offset = rq->offset;
	if (len > WIRE_READ_MAX) {
		/* The MUX must not ask for more; answer like a guest would. */
		stats_error(LG_ERR_PROTOCOL);
		lg_stats.file_read_einval++;
		agent_log(a, "ReadFileRequest for %u bytes", len);
		fd.error = EINVAL;
	} else if (!content_known(rq->file_id, a->cid)) {
		/* The MUX relays ids from our own events: it mixed them up. */
		stats_error(LG_ERR_PROTOCOL);
		lg_stats.file_read_enoent++;
		agent_log(a, "ReadFileRequest for file id %#llx, not one of ours",
		    (unsigned long long)rq->file_id);
		fd.error = ENOENT;
	} else {
		/* Leave room for the framing around the data. */
		room = a->max_frame > LG_FRAME_SLACK ?
		    a->max_frame - LG_FRAME_SLACK : 0;
		if (len > room)
			len = room;
		fd.data.len = content_read(rq->file_id, rq->offset, buf, len,
		    &eof);
		fd.data.data = buf;
		fd.eof = eof;
		lg_stats.file_read_bytes += fd.data.len;
		if (eof)
			lg_stats.file_read_eofs++;
	}
	m.msg_case = MUX__AGENT_MESSAGE__MSG_FILE_DATA;
	m.file_data = &fd;
	agent_send(a, &m);
}

static void
agent_on_remediate(struct agent *a, const Mux__RemediateRequest *rq)
{
	Mux__AgentMessage m = MUX__AGENT_MESSAGE__INIT;
	Mux__ActionResult ar = MUX__ACTION_RESULT__INIT;

	if (a->state != AGENT_RUNNING) {
		agent_violation(a, LG_ERR_PROTOCOL, "RemediateRequest before "
		    "SolutionState");
		return;
	}
	if (rq->kind < MUX__REMEDIATION_KIND__DELETE ||
	    rq->kind > MUX__REMEDIATION_KIND__DENY_ACCESS) {
		agent_violation(a, LG_ERR_PROTOCOL, "RemediateRequest with a "
		    "bad kind");
		return;
	}
	lg_stats.remediations++;
	lg_stats.remediations_by_kind[rq->kind]++;
	ar.request_id = rq->request_id;
	if (content_known(rq->file_id, a->cid)) {
		ar.ok = 1;
		ar.message = (char *)"done";
	} else {
		stats_error(LG_ERR_PROTOCOL);
		lg_stats.remediations_failed++;
		agent_log(a, "RemediateRequest for file id %#llx, not one of ours",
		    (unsigned long long)rq->file_id);
		ar.ok = 0;
		ar.message = (char *)"no such file";
	}
	m.msg_case = MUX__AGENT_MESSAGE__MSG_ACTION_RESULT;
	m.action_result = &ar;
	agent_send(a, &m);
}

static void
agent_on_reject(struct agent *a, const Mux__Reject *rj)
{
	char why[256];

	lg_stats.rejects++;
	snprintf(lg_stats.last_reject, sizeof(lg_stats.last_reject), "%s: %s",
	    agent_reject_name(rj->code), rj->reason);
	snprintf(why, sizeof(why), "rejected: %s", lg_stats.last_reject);
	if (!lg_opts.reconnect)
		a->no_redial = 1;
	agent_close(a, LG_ERR_REJECT, why);
}

static void
agent_dispatch(struct agent *a, const Mux__MuxToAgent *m, uint64_t now)
{
	if (a->state == AGENT_HELLO &&
	    m->msg_case != MUX__MUX_TO_AGENT__MSG_WELCOME &&
	    m->msg_case != MUX__MUX_TO_AGENT__MSG_REJECT) {
		agent_violation(a, LG_ERR_PROTOCOL, "first message is not "
		    "AgentWelcome or Reject");
		return;
	}
	switch (m->msg_case) {
	case MUX__MUX_TO_AGENT__MSG_WELCOME:
		agent_on_welcome(a, m->welcome);
		break;
	case MUX__MUX_TO_AGENT__MSG_REJECT:
		agent_on_reject(a, m->reject);
		break;
	case MUX__MUX_TO_AGENT__MSG_SOLUTIONS:
		agent_on_solutions(a, m->solutions);
		break;
	case MUX__MUX_TO_AGENT__MSG_VERDICT:
		agent_on_verdict(a, m->verdict, now);
		break;
	case MUX__MUX_TO_AGENT__MSG_READ_FILE:
		agent_on_read_file(a, m->read_file);
		break;
	case MUX__MUX_TO_AGENT__MSG_REMEDIATE:
		agent_on_remediate(a, m->remediate);
		break;
	case MUX__MUX_TO_AGENT__MSG_HEARTBEAT:
		lg_stats.heartbeats_received++;
		break;
	default:
		agent_violation(a, LG_ERR_PROTOCOL, "message with no msg set");
		break;
	}
}

static void
agent_read_cb(struct bufferevent *bev, void *arg)
{
	struct agent *a = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const uint8_t *body;
	uint32_t len, max;
	enum frame_status st;
	enum frame_decode_result res;
	Mux__MuxToAgent *m;
	uint64_t now = loadgen_now_ns();
	char why[96];

	/* Until the welcome names the link's max_frame, the default holds. */
	max = a->state == AGENT_HELLO ? FRAME_AGENT_MAX_DEFAULT : a->max_frame;
	while (a->state != AGENT_CLOSING && a->state != AGENT_DONE) {
		st = frame_ev_peek(in, max, &body, &len);
		if (st == FRAME_NEED_MORE)
			break;
		if (st != FRAME_OK) {
			snprintf(why, sizeof(why), "bad frame: %s",
			    frame_status_reason(st));
			agent_close(a, LG_ERR_DECODE, why);
			return;
		}
		m = (Mux__MuxToAgent *)frame_decode(
		    &mux__mux_to_agent__descriptor, body, len, &a->arena, &res);
		if (m == NULL) {
			snprintf(why, sizeof(why), "frame does not decode: %s",
			    frame_decode_reason(res));
			agent_close(a, LG_ERR_DECODE, why);
			return;
		}
		a->last_recv_ns = now;
		agent_dispatch(a, m, now);
		frame_ev_consume(in, len);
		if (a->state != AGENT_HELLO)
			max = a->max_frame;
	}
}

static void
agent_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct agent *a = arg;
	char why[128];
	int err = EVUTIL_SOCKET_ERROR();

	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0)
		return;
	lg_stats.disconnects++;
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "closed by the MUX");
	else
		snprintf(why, sizeof(why), "connection error: %s",
		    evutil_socket_error_to_string(err));
	/* A restart the run was told to survive is no error. */
	agent_close(a, lg_opts.reconnect ? LG_ERR_COUNT : LG_ERR_CLOSED, why);
	if (lg_opts.reconnect)
		agent_log(a, "%s, redialling", why);
}

static void
agent_dial(struct agent *a)
{
	char err[256];
	int fd;

	fd = vmci_connect(&lg_opts.addr, a->cid, err, sizeof(err));
	if (fd == -1) {
		lg_stats.connect_errors++;
		if (lg_opts.reconnect) {
			/* The daemon may be restarting: try again shortly. */
			agent_set_state(a, AGENT_IDLE);
			agent_arm(a, LG_REDIAL_MS);
			return;
		}
		stats_error(LG_ERR_CONNECT);
		a->had_error = 1;
		agent_log(a, "%s", err);
		agent_set_state(a, AGENT_DONE);
		return;
	}
	if (evutil_make_socket_nonblocking(fd) == -1 ||
	    (a->bev = bufferevent_socket_new(lg_base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		loadgen_fatalx("cannot set up a bufferevent");
	bufferevent_setcb(a->bev, agent_read_cb, NULL, agent_event_cb, a);
	bufferevent_set_max_single_read(a->bev, LG_IO_CHUNK);
	bufferevent_set_max_single_write(a->bev, LG_IO_CHUNK);
	bufferevent_enable(a->bev, EV_READ | EV_WRITE);
	a->max_frame = FRAME_AGENT_MAX_DEFAULT;
	a->heartbeat_ms = LG_HEARTBEAT_MS_DEFAULT;
	a->verdict_timeout_ms = LG_VERDICT_TIMEOUT_DEFAULT;
	a->session_id = 0;
	a->credit = 0;
	a->last_recv_ns = loadgen_now_ns();
	agent_set_state(a, AGENT_HELLO);
	agent_send_hello(a);
}

void
agent_init(struct agent *a, uint32_t idx, struct lg_vm *vm, uint32_t conn,
    double rate)
{
	uint32_t cid = vm->cid;

	memset(a, 0, sizeof(*a));
	a->idx = idx;
	a->cid = cid;
	a->vm = vm;
	a->conn = conn;
	a->rate = rate;
	/* Deterministic and easy to put in a vm_map: the CID in the tail. */
	snprintf(a->uuid, sizeof(a->uuid), "6c676e00-0000-4000-8000-%012x",
	    cid);
	a->rng = lg_opts.seed ^ ((uint64_t)idx << 32 | idx) ^
	    UINT64_C(0x6c6f616467656e21);
	frame_arena_init(&a->arena);
	if ((a->timer = evtimer_new(lg_base, agent_timer_cb, a)) == NULL)
		loadgen_fatalx("cannot make a timer");
}

void
agent_start(struct agent *a)
{
	agent_dial(a);
}

/*
 * Once per tick: liveness both ways, then `due` more events of credit.
 * A connection whose output is backed up gets no new events: a blocked
 * guest does not produce, and memory stays bounded.
 */
void
agent_tick(struct agent *a, uint64_t now, double due)
{
	uint64_t hb_ns, n, made;

	switch (a->state) {
	case AGENT_HELLO:
	case AGENT_WELCOMED:
		if (a->state_ns + (uint64_t)LG_HANDSHAKE_MS * 1000000 < now)
			agent_close(a, LG_ERR_HANDSHAKE,
			    "no AgentWelcome and SolutionState in time");
		return;
	case AGENT_RUNNING:
		break;
	default:
		return;
	}
	hb_ns = (uint64_t)a->heartbeat_ms * 1000000;
	/* Sums, not differences: sends during this tick are later than now. */
	if (a->last_recv_ns + LG_HEARTBEAT_MISSES * hb_ns < now) {
		agent_close(a, LG_ERR_HEARTBEAT, "MUX silent for 3 heartbeat "
		    "intervals");
		return;
	}
	if (lg_phase == LG_RUN && due > 0) {
		a->credit += due;
		if (evbuffer_get_length(bufferevent_get_output(a->bev)) >
		    LG_OUTBUF_MAX) {
			lg_stats.backpressure_skips++;
			n = (uint64_t)a->credit;
			lg_stats.events_skipped += n;
			a->credit -= (double)n;
		} else if (a->credit >= 1) {
			n = (uint64_t)a->credit;
			a->credit -= (double)n;
			made = gen_events(a, (uint32_t)n);
			if (made < n && !gen_quota_reached(a)) {
				lg_stats.backpressure_skips++;
				lg_stats.events_skipped += n - made;
			}
		}
	}
	if (a->state == AGENT_RUNNING && a->last_send_ns + hb_ns <= now)
		agent_send_heartbeat(a);
}

/* Nothing outstanding: no verdicts awaited and nothing left to write. */
int
agent_quiet(const struct agent *a)
{
	if (a->state != AGENT_RUNNING && a->state != AGENT_WELCOMED)
		return 1;
	return a->pending.live == 0 &&
	    evbuffer_get_length(bufferevent_get_output(a->bev)) == 0;
}

/* End of the run: count what never came, and let go of everything. */
void
agent_finish(struct agent *a)
{
	struct agent_unanswered u = { a, "MISSING" };
	uint32_t missing;

	if (a->state == AGENT_RUNNING || a->state == AGENT_WELCOMED) {
		missing = pending_clear(&a->pending, lg_verdict_log != NULL ?
		    agent_log_unanswered : NULL, &u);
		lg_stats.errors[LG_ERR_MISSING] += missing;
		a->vm->missing += missing;
		if (missing != 0)
			agent_log(a, "%u verdict(s) missing", missing);
	} else
		agent_lost(a);
	/*
	 * Covers --reconnect runs where the daemon never came up. A signal
	 * that cut a handshake short is the operator's doing, not the MUX's.
	 */
	if (!a->welcomed_once && !a->had_error && !(lg_interrupted &&
	    (a->state == AGENT_HELLO || a->state == AGENT_WELCOMED)))
		stats_error(LG_ERR_NEVER_CONNECTED);
	if (a->bev != NULL)
		bufferevent_free(a->bev);
	a->bev = NULL;
	if (a->timer != NULL)
		event_free(a->timer);
	a->timer = NULL;
	frame_arena_destroy(&a->arena);
	pending_free(&a->pending);
	agent_set_state(a, AGENT_DONE);
}
