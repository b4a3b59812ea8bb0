/*
 * loadgen.h: mux-loadgen, simulated thin agents for load and conformance
 * runs against muxd.
 *
 * Threading: one thread, one event_base (lg_base). Every connection, timer
 * and signal lives on it; nothing is shared between threads, so nothing
 * here locks.
 *
 * Shape of a run:
 *
 *   dial all -> START -> RUN (--duration) -> DRAIN (--drain-ms) -> report
 *
 * START lasts until every connection is welcomed (or stopped), at most
 * LG_START_WAIT_MS, so that all of them begin together and the achieved
 * rate is not diluted by a thousand handshakes.
 * In RUN a tick hands every welcomed connection its share of its VM's rate
 * (fractions carried over) and gen.c packs that many events into
 * EventBatch frames. The tick is 10 ms, shorter (down to 1 ms) when a
 * connection would get more than LG_TICK_EVENTS per tick: a flooding guest
 * sends all the time, not in lumps that other VMs' events queue behind. A VM's rate is its --vm-rate, or an even share of
 * --rate among the VMs without one. RUN ends after --duration, or once
 * --reply-events events with reply_expected are sent. In DRAIN nothing new
 * is generated; the run ends as soon as every connection has its verdicts
 * and an empty output buffer, or at the drain deadline, whichever comes
 * first.
 *
 * Files, and the prefix of their functions:
 *   loadgen.c   loadgen_*  options, start-up, phases, the ticks, exit code
 *   agent.c     agent_*    one agent connection: dial, handshake, receive,
 *                          heartbeats, deferred close and redial
 *   gen.c       gen_*      event bodies, the class mix, EventBatch frames
 *   pending.c   pending_*  per-connection ring of events awaiting a verdict
 *   content.c   content_*  file ids, paths and deterministic file content
 *   stats.c     stats_*    counters, latency histogram, progress, reports
 */
#ifndef MUX_LOADGEN_H
#define MUX_LOADGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "frame.h"
#include "vmci_shim.h"
#include "wire.h"

#ifndef MUX_VERSION
#define MUX_VERSION		"0.0.0"
#endif
#define LG_AGENT_VERSION	"mux-loadgen/" MUX_VERSION

#define LG_TICK_MS		10	/* generation and housekeeping period */
#define LG_TICK_MIN_MS		1	/* ... for the busiest connections */
#define LG_TICK_EVENTS		256	/* most events per connection per tick */
#define LG_PROGRESS_MS		1000
#define LG_START_WAIT_MS	2000	/* longest START phase */
/* Back-pressure: above this much unsent output a connection is skipped. */
#define LG_OUTBUF_MAX		(1024u * 1024u)
/* Bigger socket reads/writes than libevent's 16 KiB: fewer syscalls. */
#define LG_IO_CHUNK		(256 * 1024)
#define LG_REDIAL_MS		200
/* Welcome + SolutionState must arrive within this after the hello. */
#define LG_HANDSHAKE_MS		10000
#define LG_HEARTBEAT_MISSES	3	/* protocol section 3.8 */
/* Used until a welcome says otherwise (protocol defaults). */
#define LG_HEARTBEAT_MS_DEFAULT	5000
#define LG_VERDICT_TIMEOUT_DEFAULT 3000
/* Default drain: the verdict timeout plus this. */
#define LG_DRAIN_SLACK_MS	1000
/* Most credit a connection may carry: a stalled loop must not burst. */
#define LG_CREDIT_MAX_S		0.1
#define LG_BATCH_MAX		4096	/* upper bound of --batch */
/* Bytes of a frame that are not the event or file data (tags, lengths). */
#define LG_FRAME_SLACK		64
#define LG_PAYLOAD_MAX		60000	/* upper bound of --payload */
/* Pending-verdict ring per connection: starts small, grows to the cap. */
#define LG_PENDING_MIN		256u
#define LG_PENDING_MAX		(1u << 17)
#define LG_LOG_MAX		50	/* per-connection log lines, then quiet */
#define LG_CONTENT_FILE_MAX	(16u * 1024u * 1024u)
/* Generated files: /home/user<0..LG_USERS-1>/doc<0..LG_DOCS-1>.<ext>. */
#define LG_USERS		8
#define LG_DOCS			1000
#define LG_FILE_SIZE_MAX	(UINT64_C(1) << 40)	/* upper bound of --file-size */
#define LG_FILE_SIZE_HASHED	UINT64_MAX	/* no --file-size: 1..80 KiB */
#define LG_VM_RATES_MAX		64	/* --vm-rate options */
/* --per-vm keeps a histogram per VM (about 30 KiB, mostly untouched). */
#define LG_PER_VM_MAX		4096
#define LG_REASONS_MAX		32	/* distinct verdict reasons kept */
#define LG_REASON_LEN		48

/* Histogram: 64 sub-buckets per power of two, about 1.6 % resolution. */
#define LG_HIST_SUB_BITS	6
#define LG_HIST_SUB		(1u << LG_HIST_SUB_BITS)
#define LG_HIST_BUCKETS		((64 - LG_HIST_SUB_BITS + 1) * LG_HIST_SUB)

enum lg_phase {
	LG_START = 0,	/* handshakes under way; nothing generated yet */
	LG_RUN,
	LG_DRAIN,
	LG_DONE,
};

/* Each kind adds to `errors`; the order is the report's. */
enum lg_err {
	LG_ERR_CONNECT = 0,	/* dial failed */
	LG_ERR_REJECT,		/* the MUX sent Reject */
	LG_ERR_CLOSED,		/* the MUX closed the connection */
	LG_ERR_DECODE,		/* bad length or undecodable frame */
	LG_ERR_PROTOCOL,	/* a decodable message that breaks the contract */
	LG_ERR_HANDSHAKE,	/* no welcome + solutions in time */
	LG_ERR_HEARTBEAT,	/* MUX silent for 3 heartbeat intervals */
	LG_ERR_VERDICT,		/* verdict for an unknown or answered event */
	LG_ERR_MISSING,		/* reply_expected event never answered */
	LG_ERR_EARLY_TIMEOUT,	/* timed_out verdict before verdict_timeout_ms */
	LG_ERR_SEND,		/* a frame could not be queued */
	LG_ERR_NEVER_CONNECTED,	/* a connection never got a welcome */
	LG_ERR_COUNT
};

struct bufferevent;
struct event;
struct event_base;

struct lg_options {
	const char	*connect;
	struct vmci_addr addr;
	uint32_t	 agents;	/* VMs */
	uint32_t	 conns_per_vm;
	uint32_t	 first_cid;
	double		 rate;		/* events/s, all connections */
	double		 duration;	/* seconds */
	double		 reply_share;	/* of all events */
	unsigned	 mix[WIRE_NCLASSES + 1];	/* weight by EventClass */
	uint32_t	 batch;		/* most events per frame */
	uint32_t	 payload;	/* target event size, 0: natural */
	const char	*record;
	const char	*verdict_log;
	struct {
		uint32_t cid;
		double	 rate;		/* events/s, all its connections */
	}		 vm_rates[LG_VM_RATES_MAX];
	unsigned	 nvm_rates;
	int		 per_vm;	/* report every VM, not only --vm-rate ones */
	uint64_t	 reply_events;	/* stop after this many; 0: no limit */
	int		 duration_set;
	uint64_t	 file_size;	/* LG_FILE_SIZE_HASHED: from the id */
	long		 drain_ms;	/* -1: verdict timeout + slack */
	int		 json;
	int		 quiet;
	int		 reconnect;
	uint64_t	 seed;
};

struct lg_hist {
	uint64_t	 count;
	uint64_t	 max;
	uint64_t	 b[LG_HIST_BUCKETS];
};

struct lg_stats {
	uint64_t	 sent;
	uint64_t	 sent_by_class[WIRE_NCLASSES + 1];
	uint64_t	 reply_expected;
	uint64_t	 frames;
	uint64_t	 verdicts;
	uint64_t	 allow;
	uint64_t	 deny;
	uint64_t	 timed_out;
	struct {
		char	 name[LG_REASON_LEN];
		uint64_t n;
	}		 reasons[LG_REASONS_MAX];
	unsigned	 nreasons;
	uint64_t	 reasons_other;
	struct lg_hist	 latency;	/* nanoseconds, send -> verdict */
	uint64_t	 errors[LG_ERR_COUNT];
	uint64_t	 connections;	/* connections welcomed at least once */
	uint64_t	 sessions;	/* welcomes, redials included */
	uint64_t	 connect_errors; /* failed dials, counted or not */
	uint64_t	 rejects;
	char		 last_reject[128];	/* "CODE: reason" */
	uint64_t	 disconnects;	/* closes by the MUX, counted or not */
	uint64_t	 redials;
	uint64_t	 lost_on_close;	/* pending when its connection closed */
	uint64_t	 flood;		/* verdicts with reason "flood" */
	struct lg_hist	 latency_calm;	/* VMs without --vm-rate only */
	uint64_t	 file_reads;
	uint64_t	 file_read_bytes;
	uint64_t	 file_read_eofs;	/* answers with eof set */
	uint64_t	 file_read_einval;	/* length over 32 KiB */
	uint64_t	 file_read_enoent;	/* file id we never made */
	uint64_t	 remediations;
	uint64_t	 remediations_by_kind[MUX__REMEDIATION_KIND__DENY_ACCESS + 1];
	uint64_t	 remediations_failed;	/* unknown file id: ok = false */
	uint64_t	 solution_updates;
	uint64_t	 solution_generation;	/* highest seen */
	char		 solutions[256];	/* that state, for the report */
	uint64_t	 heartbeats_sent;
	uint64_t	 heartbeats_received;
	uint64_t	 backpressure_skips;	/* connection-ticks skipped */
	uint64_t	 events_skipped;	/* events not made for it */
	uint64_t	 pending_full;	/* ring full: sent without reply */
};

/* One VM: its rate and what happened to its events. */
struct lg_vm {
	uint32_t	 cid;
	int		 override;	/* its rate came from --vm-rate */
	double		 rate;		/* events/s, all its connections */
	uint64_t	 sent;
	uint64_t	 reply_expected;
	uint64_t	 verdicts;
	uint64_t	 allow;
	uint64_t	 deny;
	uint64_t	 flood;
	uint64_t	 timed_out;
	uint64_t	 missing;
	uint64_t	 lost_on_close;
	struct lg_hist	*latency;	/* NULL: not reported on its own */
};

/*
 * One pending-verdict entry; sent_ns PENDING_ANSWERED once answered. What
 * the event was about is kept for --verdict-log.
 */
#define PENDING_ANSWERED	UINT64_MAX
struct pending_ent {
	uint64_t	 event_id;
	uint64_t	 sent_ns;
	union {
		uint64_t	 file_id;	/* cls FILE: path from content.c */
		const char	*path;		/* cls PROCESS: a static string */
	}		 what;
	int		 cls;
};

/* Ring ordered by event_id; indices free-running, compared by difference. */
struct pending {
	struct pending_ent *v;
	uint32_t	 cap;		/* power of two, 0 before first push */
	uint32_t	 head;		/* next free */
	uint32_t	 tail;		/* oldest entry, answered or not */
	uint32_t	 live;		/* entries not yet answered */
};

enum agent_state {
	AGENT_IDLE = 0,		/* not dialled yet, or waiting to redial */
	AGENT_HELLO,		/* hello sent, waiting for AgentWelcome */
	AGENT_WELCOMED,		/* welcome seen, waiting for SolutionState */
	AGENT_RUNNING,		/* generating, answering requests */
	AGENT_CLOSING,		/* closed; reaped from the loop */
	AGENT_DONE,		/* stopped for good */
};

struct agent {
	uint32_t	 idx;		/* connection number, 0-based */
	uint32_t	 cid;
	uint32_t	 conn;		/* connection number within its VM */
	struct lg_vm	*vm;
	double		 rate;		/* events/s of this connection */
	enum agent_state state;
	struct bufferevent *bev;
	struct event	*timer;		/* deferred close, then redial */
	struct frame_arena arena;
	char		 uuid[40];	/* claimed_vm_uuid */

	uint64_t	 session_id;
	uint32_t	 max_frame;
	uint32_t	 heartbeat_ms;
	uint32_t	 verdict_timeout_ms;
	uint64_t	 solution_gen;

	uint64_t	 next_event_id;
	double		 credit;	/* events due, fractions carried */
	uint64_t	 rng;
	uint64_t	 last_send_ns;	/* monotonic */
	uint64_t	 last_recv_ns;
	uint64_t	 state_ns;	/* when the state was entered */
	int		 welcomed_once;
	int		 had_error;	/* an error was counted for it */
	int		 no_redial;	/* Reject without --reconnect */
	uint32_t	 reserved;	/* reply slots of the frame being built */
	struct pending	 pending;
};

extern struct event_base *lg_base;
extern struct lg_options lg_opts;
extern struct lg_stats	 lg_stats;
extern enum lg_phase	 lg_phase;
extern FILE		*lg_record;
extern FILE		*lg_verdict_log;
extern struct lg_vm	*lg_vms;
extern uint32_t		 lg_nvms;
extern int		 lg_interrupted;	/* SIGINT/SIGTERM seen */

/* loadgen.c */
uint64_t loadgen_now_ns(void);
uint64_t loadgen_realtime_ns(void);
void	 loadgen_log(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 loadgen_fatalx(const char *, ...)
	     __attribute__((format(printf, 1, 2), noreturn));

/* agent.c */
void	 agent_init(struct agent *, uint32_t idx, struct lg_vm *, uint32_t conn,
	     double rate);
void	 agent_start(struct agent *);
void	 agent_tick(struct agent *, uint64_t now, double due);
int	 agent_quiet(const struct agent *);
void	 agent_finish(struct agent *);
int	 agent_send(struct agent *, Mux__AgentMessage *);

/* gen.c */
int	 gen_init(char *err, size_t errlen);
void	 gen_free(void);
uint32_t gen_events(struct agent *, uint32_t n);
int	 gen_quota_reached(const struct agent *);

/* pending.c */
int	 pending_push(struct pending *, const struct pending_ent *);
int	 pending_take(struct pending *, uint64_t event_id, struct pending_ent *);
uint32_t pending_room(const struct pending *);
uint32_t pending_clear(struct pending *,
	     void (*)(const struct pending_ent *, void *), void *);
void	 pending_free(struct pending *);

/* content.c */
int	 content_add_rule(const char *, char *err, size_t errlen);
void	 content_free(void);
uint64_t content_file_id(uint32_t cid, uint32_t user, uint32_t doc);
uint64_t content_bin_id(uint32_t cid, uint32_t bin);
size_t	 content_base_path(uint64_t file_id, char *buf, size_t len);
int	 content_known(uint64_t file_id, uint32_t cid);
uint64_t content_size(uint64_t file_id);
uint32_t content_read(uint64_t file_id, uint64_t offset, uint8_t *buf,
	     uint32_t len, int *eof);

/* stats.c */
void	 stats_hist_add(struct lg_hist *, uint64_t);
uint64_t stats_hist_quantile(const struct lg_hist *, double);
void	 stats_verdict(struct lg_vm *, int action, const char *reason,
	     int timed_out, uint64_t latency_ns);
void	 stats_error(enum lg_err);
uint64_t stats_errors_total(void);
const char *stats_error_name(enum lg_err);
void	 stats_progress(double elapsed_s);
void	 stats_progress_end(void);
void	 stats_report(FILE *, double run_s, int json);

#endif
