/*
 * mux.h: muxd's private header. It reads as a table of contents: shared
 * types first, then prototypes grouped by file.
 *
 * THREADING MODEL
 *
 *   main thread  (event_base "main")
 *     signals, control socket (control.c), /metrics HTTP (metrics.c),
 *     1 s sampling for rates and alarms. Reads counters (relaxed atomics)
 *     and the snapshots below; never touches a connection.
 *
 *   ingest thread  (event_base "ingest", ingest.c + agent.c)
 *     owns every agent connection, the VM table, the per-VM limits and
 *     the verdict obligations. It is the ring's ONE producer: it stamps
 *     each event (seq, VM identity, ingest time), encodes the Delivery once
 *     and appends it with ring_push_sp(). Then it signals `ring_wake`.
 *
 *   fan-out thread  (event_base "fanout", fanout.c + svm.c + batch.c)
 *     owns every SVM session: dialing, registration, cursors into the
 *     ring, batching, windows, acks, gaps, heartbeats. It only READS the
 *     ring (ring_*_mc) and never waits for, nor makes, the producer wait.
 *
 *   What crosses threads, and how:
 *     ingest -> fanout   events: the ring (lock-free) + ring_wake (a pipe
 *                        written only when the reader armed it);
 *                        VM status changes: mbox `to_fanout`.
 *     fanout -> ingest   solution state (the full SolutionState frame),
 *                        and the return path (SVM verdicts, file reads,
 *                        remediation: issue 5): mbox `to_ingest`.
 *     main -> workers    operator commands: mbox `to_ingest`/`to_fanout`.
 *     workers -> main    counters (struct metrics, relaxed atomics) and
 *                        snapshots for `muxctl` (struct snap, under
 *                        snap.lock; published every SNAP_PERIOD_MS and on
 *                        change, never on the per-event path).
 *   The per-event hot path (agent read -> decode -> ring -> SVM write)
 *   takes no mutex. Mailboxes carry control-plane messages only.
 *
 * Objects owned by a loop are freed from that loop, never inside their own
 * callback: a connection is marked closing and reaped by a zero-timeout
 * event (tmux's deferred free).
 */
#ifndef MUX_MUX_H
#define MUX_MUX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "config.h"
#include "log.h"
#include "ring.h"
#include "wire.h"

struct event_base;
struct event;
struct evbuffer;
struct bufferevent;

#ifndef MUX_VERSION
#define MUX_VERSION		"0.0.0"
#endif

#define SNAP_PERIOD_MS		250	/* snapshot refresh for muxctl */
#define REGISTER_TIMEOUT_MS	10000	/* protocol 4.1 */
#define BACKOFF_FIRST_MS	250	/* redial: first delay (spec: <= 1 s) */
#define BACKOFF_MAX_MS		5000	/* redial: cap (spec: <= 10 s) */
#define HEARTBEAT_MISSES	3	/* silent intervals before a peer is gone */
#define SVM_OUT_HIGH		(8u * 1024u * 1024u) /* stop filling an SVM's socket */
#define SVM_OUT_LOW		(2u * 1024u * 1024u) /* resume below this */
#define SVM_WINDOW_MAX		65536u	/* cap on a requested window */
#define AGENT_OUT_HIGH		(4u * 1024u * 1024u) /* agent not reading: close */
#define DELIVERY_OVERHEAD	1024u	/* Delivery fields around an Event */
#define ALARMS_MAX		32

/* ---- time (util.c) ---- */
uint64_t now_ns(void);		/* CLOCK_REALTIME: stamped on the wire */
uint64_t mono_ns(void);		/* CLOCK_MONOTONIC: timeouts and rates */

/* ---- mailboxes and wake-ups (mbox.c) ---- */

/* A wake-up from any thread to one event_base; cheap when not armed. */
struct wake {
	int		 fds[2];
	atomic_int	 armed;
	struct event	*ev;
	void		(*cb)(void *);
	void		*arg;
};

enum mbox_type {
	MBOX_VM_STATUS = 1,	/* ingest -> fanout */
	MBOX_SOLUTIONS,		/* fanout -> ingest: packed MuxToAgent frame */
	MBOX_VM_MAP,		/* main -> ingest */
	MBOX_VM_EVENT,		/* main -> ingest */
	MBOX_DECIDER,		/* fanout -> ingest: struct decider_msg */
	MBOX_VERDICTS,		/* fanout -> ingest: struct verdicts_msg */
	MBOX_SVM_REQUEST,	/* fanout -> ingest: struct svm_request */
	MBOX_SVM_ANSWER,	/* ingest -> fanout: struct svm_answer */
	MBOX_SVM_ADD,		/* main -> fanout: struct config_svm */
	MBOX_SVM_REMOVE,	/* main -> fanout: struct config_svm (name) */
	MBOX_LIMITS,		/* main -> ingest: struct limits_msg */
};

/* The per-VM limits a reload changes on the running ingest thread. */
struct limits_msg {
	uint32_t	 events_per_sec;
	uint64_t	 bytes_per_sec;
	uint32_t	 pending_verdicts;
};

/*
 * The return path. Every message from one SVM session carries its slot
 * (fixed per [svm] entry, < VERDICT_SLOTS) and gen (bumped at each
 * registration), so that nothing from an old connection is taken for the
 * new one. All fan-out -> ingest messages go through one FIFO mailbox, so
 * a decider's verdicts always arrive before the news of its loss.
 */
#define REASON_LEN	128

struct decider_msg {
	int		 slot;
	uint32_t	 gen;
	int		 up;		/* registered (1) or lost (0) */
	int		 verdicts;
	wire_class_mask	 classes;
	char		 service_id[CONFIG_STR_MAX];
	size_t		 ncids;		/* 0: all VMs */
	uint32_t	 cids[];	/* sorted */
};

struct verdict_item {
	uint64_t	 seq;
	int		 action;
	char		 reason[REASON_LEN];
};

struct verdicts_msg {
	int		 slot;
	uint32_t	 gen;
	size_t		 n;
	struct verdict_item items[];
};

enum svm_req_kind {
	SVM_REQ_READ = 1,
	SVM_REQ_REMEDIATE,
};

struct svm_request {
	int		 slot;
	uint32_t	 gen;
	enum svm_req_kind kind;
	uint64_t	 svm_request_id;
	uint64_t	 seq;
	uint64_t	 session;	/* agent connection the event came from */
	uint32_t	 cid;
	uint64_t	 event_id;
	uint64_t	 file_id;
	uint64_t	 offset;
	uint32_t	 length;
	int		 remediation;	/* Mux__RemediationKind */
};

struct svm_answer {
	int		 slot;
	uint32_t	 gen;
	enum svm_req_kind kind;
	uint64_t	 svm_request_id;
	uint64_t	 offset;
	int		 eof;
	int32_t		 error;		/* FileData.error */
	int		 ok;		/* ActionResult.ok */
	char		 message[REASON_LEN];
	size_t		 len;
	uint8_t		 data[];
};

struct mbox_msg {
	enum mbox_type	 type;
	TAILQ_ENTRY(mbox_msg) entry;
	uint32_t	 cid;
	int		 state;		/* Mux__VmStatus__State or VmEvent op */
	char		 vm_uuid[64];
	char		 vm_name[128];
	char		 agent_version[64];
	char		 claimed_uuid[64];
	size_t		 len;		/* of data */
	uint8_t		 data[];
};
TAILQ_HEAD(mbox_list, mbox_msg);

struct mbox {
	pthread_mutex_t	 lock;
	struct mbox_list list;
	struct wake	 wake;
};

int	 wake_init(struct wake *, struct event_base *, void (*)(void *), void *);
void	 wake_signal(struct wake *);
void	 wake_free(struct wake *);
int	 mbox_init(struct mbox *, struct event_base *, void (*)(void *), void *);
struct mbox_msg *mbox_msg_new(enum mbox_type, size_t datalen);
/* From here on the receiving thread owns (and frees) the message. */
void	 mbox_post(struct mbox *, struct mbox_msg *);
/* Takes every message posted so far (the caller frees each). */
void	 mbox_take(struct mbox *, struct mbox_list *);
void	 mbox_free(struct mbox *);

/* ---- metrics (metrics.c) ---- */

enum mux_link {
	LINK_AGENT = 0,
	LINK_SVM,
	LINK_CONTROL,
	LINK__MAX,
};

/* Protocol error reasons: a fixed table, so counters are plain arrays. */
enum perr {
	PERR_EMPTY_FRAME = 0,
	PERR_FRAME_TOO_BIG,
	PERR_DECODE,
	PERR_ALLOC_BUDGET,
	PERR_NO_ONEOF,
	PERR_UNEXPECTED,	/* message not allowed in this state */
	PERR_VERSION,
	PERR_BAD_ENUM,
	PERR_BAD_FIELD,
	PERR_NO_BODY,
	PERR_REPLY_NOT_ALLOWED,
	PERR_EVENT_ID_ORDER,
	PERR_SPOOFED_VM_EVENT,
	PERR_CID_LINE,
	PERR_CID_LINE_TIMEOUT,
	PERR_HEARTBEAT_TIMEOUT,
	PERR_REGISTER_TIMEOUT,
	PERR_ACK_AHEAD,
	PERR_NOT_AUTHORIZED,
	PERR_OUTPUT_OVERFLOW,	/* peer does not read what we send */
	PERR_TLS,		/* handshake failed (certificate, name, version) */
	PERR__MAX,
};

enum drop_reason {
	DROP_RATE = 0,		/* agent_max_events_per_sec */
	DROP_PENDING,		/* agent_max_pending_verdicts */
	DROP_CONN_LIMIT,	/* connections refused by max_agents / per VM */
	DROP__MAX,
};

enum verdict_source {
	VSRC_SVM = 0,
	VSRC_DEFAULT,
	VSRC__MAX,
};

#define LAT_BUCKETS	16	/* histogram upper bounds in metrics.c */

struct metrics {
	_Atomic uint64_t received[WIRE_NCLASSES + 1];	/* by EventClass */
	_Atomic uint64_t dropped[DROP__MAX];
	_Atomic uint64_t proto_err[LINK__MAX][PERR__MAX];
	_Atomic uint64_t verdicts[3][VSRC__MAX];	/* by Action */
	_Atomic uint64_t verdict_timeouts;
	_Atomic uint64_t lat_bucket[LAT_BUCKETS + 1];	/* last: +Inf */
	_Atomic uint64_t lat_sum_ns;
	_Atomic uint64_t lat_count;
	_Atomic uint64_t identity_mismatch;
	_Atomic uint64_t agents_connected;		/* welcomed, gauge */
	_Atomic uint64_t agent_sessions_total;
	_Atomic uint64_t svm_verdicts_ignored;
	_Atomic uint64_t svm_rejects;
	_Atomic uint64_t svm_requests_failed;	/* answered at once with an error */
	_Atomic uint64_t svm_requests;		/* relayed to an agent */
	_Atomic uint64_t svm_answers_dropped;	/* the asking session had gone */
	_Atomic uint64_t agent_answers_ignored;	/* unknown or late request id */
	_Atomic uint64_t verdicts_orphaned;	/* decided for a closed connection */
	_Atomic uint64_t solution_generation;
};

extern struct metrics metrics;

#define METRIC_ADD(c, n) atomic_fetch_add_explicit(&(c), (n), memory_order_relaxed)
#define METRIC_INC(c)	METRIC_ADD(c, 1)
#define METRIC_GET(c)	atomic_load_explicit(&(c), memory_order_relaxed)

const char *metrics_perr_name(enum perr);
const char *metrics_drop_name(enum drop_reason);
void	 metrics_proto_error(enum mux_link, enum perr);
void	 metrics_verdict(int action, enum verdict_source, uint64_t latency_ns);
uint64_t metrics_received_total(void);
struct mux;
void	 metrics_render(struct mux *, struct evbuffer *);
int	 metrics_http_start(struct mux *, char *err, size_t errlen);

/* ---- snapshots for the control thread (snap.c) ---- */

struct snap_agent {
	uint64_t	session;
	uint32_t	cid;
	char		peer[96];
	char		vm_uuid[64];
	char		vm_name[128];
	char		claimed_uuid[64];
	char		agent_version[64];
	char		os[32];
	int		welcomed;
	int		protected;	/* an up decider covers its VM */
	uint32_t	pending;	/* verdicts it waits for */
	uint64_t	events;
	uint64_t	verdicts;
	uint64_t	connected_ns;	/* CLOCK_REALTIME */
};

enum svm_state {
	SVM_IDLE = 0,		/* waiting to redial */
	SVM_CONNECTING,
	SVM_REGISTERING,	/* hello sent, waiting for Register */
	SVM_LIVE,
	SVM_REMOVED,
};

struct snap_svm {
	char		name[CONFIG_NAME_MAX];
	char		address[CONFIG_STR_MAX];
	char		service_id[CONFIG_STR_MAX];
	char		instance_id[CONFIG_STR_MAX];
	enum svm_state	state;
	int		tls;
	int		verdicts;
	wire_class_mask	classes;
	uint32_t	ncids;
	uint32_t	window;
	uint64_t	cursor;		/* next seq it will be offered */
	uint64_t	acked;
	uint64_t	inflight;
	uint64_t	lag;		/* head - cursor */
	uint64_t	delivered;
	uint64_t	batches;
	uint64_t	gaps;
	uint64_t	gap_events;
	uint64_t	connects;
	uint64_t	rejects;
	uint64_t	since_ns;	/* state entered, CLOCK_REALTIME */
	char		last_error[160];
};

struct snap {
	pthread_mutex_t	 lock;
	struct snap_agent *agents;
	size_t		 nagents;
	struct snap_svm	*svms;
	size_t		 nsvms;
	char		 alarms[ALARMS_MAX][192];
	uint64_t	 alarm_ns[ALARMS_MAX];
	size_t		 nalarms;
};

void	 snap_init(struct snap *);
void	 snap_set_agents(struct snap *, struct snap_agent *, size_t);
void	 snap_set_svms(struct snap *, struct snap_svm *, size_t);
void	 snap_alarm(struct snap *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/* ---- the daemon (main.c) ---- */

struct ingest;
struct fanout;

struct mux {
	struct config	 conf;
	uint64_t	 epoch;		/* random per start, never 0 */
	uint64_t	 start_ns;	/* CLOCK_REALTIME */
	uint64_t	 start_mono;
	struct ring	 ring;
	struct wake	 ring_wake;	/* ingest -> fanout: new records */
	struct mbox	 to_fanout;
	struct mbox	 to_ingest;
	struct snap	 snap;
	struct event_base *main_base;
	struct ingest	*ingest;
	struct fanout	*fanout;
	char		 config_error[CONFIG_ERR_MAX + 256]; /* last-good fallback */
	const char	*config_path;	/* -f, for reload; NULL: defaults */
	int		 tls_ready;	/* a TLS context exists (set at start) */
	/* The [svm] entries as the main thread last told the fan-out. */
	struct config_svm svms_now[CONFIG_SVMS_MAX];
	size_t		 nsvms_now;
	/* 1 s samples for rates (main thread only). */
	uint64_t	 rate_in, rate_out;
	uint64_t	 last_in, last_out, last_sample;
};

/* ---- ingest side (ingest.c, agent.c) ---- */
struct ingest	*ingest_new(struct mux *, char *err, size_t errlen);
int		 ingest_start(struct ingest *);	/* spawns the thread */
void		 ingest_stop(struct ingest *);
void		 ingest_free(struct ingest *);

/* ---- fan-out side (fanout.c, svm.c, batch.c) ---- */
struct fanout	*fanout_new(struct mux *, char *err, size_t errlen);
int		 fanout_start(struct fanout *);
void		 fanout_stop(struct fanout *);
void		 fanout_free(struct fanout *);
uint64_t	 fanout_delivered_total(void);
struct ssl_ctx_st *fanout_tls_context(const struct config *, char *err, size_t errlen);

/* ---- reload and run-time SVM entries (reload.c, main thread) ---- */
int	 reload_config(struct mux *, struct evbuffer *out, char *fail, size_t);
int	 reload_svm_add(struct mux *, const struct config_svm *, char *fail, size_t);
int	 reload_svm_remove(struct mux *, const char *name, char *fail, size_t);

/* ---- control socket (control.c) ---- */
int	 control_start(struct mux *, char *err, size_t errlen);
void	 control_stop(void);
void	 control_render(struct mux *, const char *cmd, int json,
	    struct evbuffer *out, char *fail, size_t faillen);

/* ---- helpers (util.c) ---- */
uint64_t mux_random64(void);
void	 json_str(struct evbuffer *, const char *);
int	 parse_hostport(const char *, char *host, size_t hostlen, uint16_t *port);
int	 svm_resolve(const char *address, struct sockaddr_storage *,
	    socklen_t *salen, char *err, size_t errlen);

/* What MBOX_SVM_ADD carries: the entry and its address, resolved. */
struct svm_entry {
	struct config_svm	 conf;
	struct sockaddr_storage	 sa;
	socklen_t		 salen;
};
void	 fmt_duration(uint64_t ns, char *buf, size_t len);

#endif
