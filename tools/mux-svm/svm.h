/*
 * svm.h: mux-svm, the reference SVM (security VM) that muxd dials.
 *
 * Threading: one thread, one event_base (svm_base). Nothing blocks except
 * the deliberate --process-us sleep, which simulates a slow consumer.
 *
 * Shape:
 *
 *   listener --accept--> svm_conn (bufferevent; TLS 1.3 server,
 *                        svm-tls.c, unless --tls-off)  x N, independent
 *        |                  |-- svm-check.c  seq order / holes / duplicates
 *        |                  |-- svm-policy.c verdicts (allow, deny-path,
 *        |                  |                delay, scan), remediation
 *        |                  |-- svm-read.c   file contents through
 *        |                  |                SvmReadFile, --read-files
 *        |                  |      `-- svm-scan.c  clamd INSTREAM, one
 *        |                  |                      Unix connection a scan
 *        |                  `-- svm-vm.c     last VmStatus per cid
 *        `-- process-wide: svm-state.c (resume points, --state file),
 *                          svm-report.c (counters, latency, report),
 *                          the --record file, the clamd slots.
 *
 * Connections are independent except for the resume point (epoch of the
 * last Registered + highest seq finished in it), kept per MUX host_id
 * beyond any one connection, so that a redialled connection, or a
 * restarted process with --state, resumes where the previous one stopped,
 * and for the clamd slots (SVM_SCANS_DEFAULT at once, process-wide).
 *
 * A file job (struct svm_file) is one delivery whose content is read:
 *
 *   queued --slot--> reading <--> (retry, paused) --eof/error--> [scan
 *   reply] --> svm_policy_file_done (verdict, remediation) --> dead
 *
 * Its seq stays "open" in the resume point until the job ends, so a
 * connection that closes under it (jobs abandoned, counted) makes the
 * next Register ask for it again; see svm-state.c.
 *
 * Objects are never freed inside their own callbacks: svm_conn_close()
 * marks a connection closing and svm_reap() frees it from the loop; a
 * file job that ends goes to a dead list freed from the loop the same way.
 */
#ifndef MUX_SVM_H
#define MUX_SVM_H

#include <sys/queue.h>

#include <stdint.h>
#include <stdio.h>

#include "frame.h"
#include "wire.h"

struct bufferevent;
struct sockaddr;
struct event;
struct event_base;

/* Defaults and limits, each with the reason for its value. */
#define SVM_HEARTBEAT_MS_DEFAULT 5000	/* protocol 3.8 when MuxHello says 0 */
#define SVM_SILENT_INTERVALS	3	/* a peer silent this long is gone */
#define SVM_HELLO_TIMEOUT_MS	10000	/* mirror of the MUX's Register timer */
#define SVM_CONN_MAX		64	/* concurrent MUX connections served */
#define SVM_CIDS_MAX		1024	/* --cids entries */
#define SVM_ID_MAX		256	/* --service-id / --instance-id length */
/* Input held before reading pauses: room for two whole maximal frames. */
#define SVM_IN_FRAMES		2
/* Replies (acks, verdicts) a MUX that stopped reading may leave queued. */
#define SVM_OUT_MAX		(64u * 1024u * 1024u)
/*
 * Work done per read callback before yielding to the loop, so that timers
 * (heartbeats, stop, progress) still run when a backlog is being drained.
 */
#define SVM_DRAIN_FRAMES	256
#define SVM_DRAIN_MS		50
/* Deferred (delay policy) verdicts held per connection; beyond: dropped. */
#define SVM_DELAY_PENDING_MAX	262144
#define SVM_VMS_MAX		4096	/* distinct cids whose status is kept */
/*
 * File reading (svm-read.c). The MUX allows 256 requests in flight per SVM
 * connection and 64 per VM (over all SVMs, remediations included): one
 * read in flight per file, at most SVM_READS_DEFAULT files per connection
 * and SVM_READS_PER_VM per VM leave room for remediations and for another
 * SVM reading the same VM.
 */
#define SVM_READ_CHUNK		WIRE_READ_MAX	/* 32 KiB, the protocol's most */
#define SVM_READS_DEFAULT	64	/* files read at once per connection */
#define SVM_READS_MAX		256	/* --reads cap: the MUX's own limit */
#define SVM_READS_PER_VM	32	/* half the MUX's 64 per VM */
#define SVM_READ_QUEUE_MAX	1024	/* files waiting; beyond: skipped */
#define SVM_READ_RETRIES	5	/* EAGAIN asked again this often */
#define SVM_READ_RETRY_MS	20	/* ... after this long */
/* A guest that never says eof: beyond this a read is a bad reply. */
#define SVM_FILE_MAX_BYTES	(1ull << 30)
/* Clamd (svm-scan.c). clamd's MaxThreads defaults to 10. */
#define SVM_SCANS_DEFAULT	8	/* clamd connections at once */
#define SVM_SCANS_MAX		64	/* --scans cap */
/* Bytes queued towards clamd before the guest read pauses. */
#define SVM_SCAN_OUT_MAX	(256u * 1024u)
#define SVM_SCAN_REPLY_MAX	1024	/* longest clamd reply line */
#define SVM_SCAN_TIMEOUT_S	30	/* clamd silent this long: error */
/* Remediations awaiting an ActionResult per connection; beyond: skipped. */
#define SVM_REMEDIATE_MAX	64
/* Seqs with unfinished content work per MUX (svm-state.c). */
#define SVM_OPEN_MAX		4096

enum svm_policy_kind {
	SVM_POLICY_ALLOW = 1,
	SVM_POLICY_DENY_PATH,
	SVM_POLICY_DELAY,
	SVM_POLICY_SCAN,
};

struct svm_policy {
	enum svm_policy_kind	 kind;
	char			*glob;		/* deny-path */
	char			*deny_reason;	/* "path matches GLOB" */
	uint64_t		 delay_ms;	/* delay */
	char			*clamd_path;	/* scan:clamd:SOCKET */
};

/* --remediate KIND; 0: none. Values are Mux__RemediationKind. */
struct svm_remediate {
	int			 kind;
	const char		*name;
};

struct svm_options {
	const char		*listen;
	char			 service_id[SVM_ID_MAX];
	char			 instance_id[SVM_ID_MAX];
	wire_class_mask		 classes;
	uint32_t		 cids[SVM_CIDS_MAX];
	size_t			 ncids;
	int			 verdicts;
	uint32_t		 window;
	struct svm_policy	 policy;
	int			 tls_off;
	const char		*tls_cert;	/* --cert: ours, PEM chain */
	const char		*tls_key;	/* --key */
	const char		*tls_ca;	/* --ca: signed the MUX's cert */
	const char		*tls_client_name; /* --client-name; NULL: any */
	int			 json;
	int			 quiet;
	int			 exit_on_reject;
	const char		*state_path;
	const char		*record_path;
	const char		*port_file;
	uint64_t		 ack_delay_ms;
	uint64_t		 process_us;
	uint64_t		 duration_s;
	uint32_t		 max_frame;
	const char		*read_dir;	/* --read-files DIR */
	uint32_t		 reads;		/* --reads: files at once */
	uint32_t		 scans;		/* --scans: clamd at once */
	struct svm_remediate	 remediate;
};

/* A seq whose file job has not ended (svm-state.c). */
struct svm_open {
	uint64_t		 seq;
	uint64_t		 conn_id;	/* owner; 0: abandoned */
};

/* Resume point of one MUX, keyed by its host_id (svm-state.c). */
struct svm_resume {
	char			 host_id[SVM_ID_MAX];
	uint64_t		 epoch;		/* of the last Registered; 0 never */
	uint64_t		 last;		/* every seq <= it finished */
	uint64_t		 hi;		/* highest seq processed */
	struct svm_open		*open;		/* ascending seq, SVM_OPEN_MAX */
	size_t			 nopen;
	int			 used;
};

/* Sequence tracking of one connection within one epoch (svm-check.c). */
struct svm_track {
	struct svm_resume	*resume;	/* this MUX's; NULL: none */
	uint64_t		 epoch;
	uint64_t		 live_from;	/* Registered.next_seq */
	uint64_t		 hi_recv;	/* highest seq received, 0 none */
	uint64_t		 covered;	/* every seq <= it accounted for */
	int			 covered_known;
	uint64_t		 gap_hi;	/* highest seq a Gap gave up */
	int			 any_rx;	/* a delivery or gap arrived */
};

enum svm_check_result {
	SVM_CHECK_NEW = 0,	/* in order: process it */
	SVM_CHECK_DUPLICATE,	/* already processed before a reconnect */
	SVM_CHECK_ORDER,	/* not above the previous seq received */
};

/* Log-linear latency histogram: fixed size, ~6% resolution. */
#define SVM_HIST_SUB_BITS	4
#define SVM_HIST_SUB		(1u << SVM_HIST_SUB_BITS)
#define SVM_HIST_BUCKETS	(SVM_HIST_SUB + (64 - SVM_HIST_SUB_BITS) * SVM_HIST_SUB)
struct svm_hist {
	uint64_t		 n;
	uint64_t		 max;
	uint64_t		 bucket[SVM_HIST_BUCKETS];
};

/* Why a file read was given up: the MUX's errnos, then the rest. */
enum svm_read_err {
	SVM_READ_ENOENT = 0,	/* seq not held */
	SVM_READ_EINVAL,	/* not a file event, bad length */
	SVM_READ_ENOTCONN,	/* agent gone */
	SVM_READ_ETIMEDOUT,	/* agent silent */
	SVM_READ_EAGAIN,	/* too many in flight, after retries */
	SVM_READ_OTHER,		/* any other errno */
	SVM_READ_BAD,		/* offset or length not what was asked */
	SVM_READ_ERR_N
};

struct svm_stats {
	uint64_t		 received;	/* new deliveries processed */
	uint64_t		 duplicates;
	uint64_t		 order_errors;
	uint64_t		 holes;
	uint64_t		 gap_overlaps;	/* Gap over a seq received */
	uint64_t		 gaps;
	uint64_t		 gap_events;	/* OVERRUN ranges, summed */
	uint64_t		 epoch_changes;	/* EPOCH_CHANGED gaps */
	uint64_t		 batches;
	uint64_t		 reply_expected;
	uint64_t		 verdicts_sent;
	uint64_t		 deny_sent;
	uint64_t		 verdicts_dropped;
	uint64_t		 acks_sent;
	uint64_t		 heartbeats_sent;
	uint64_t		 heartbeats_received;
	uint64_t		 vm_status;
	uint64_t		 file_data;
	uint64_t		 action_results;
	uint64_t		 action_results_unknown;
	uint64_t		 redelivered;	/* abandoned jobs asked again */
	uint64_t		 file_jobs;	/* files queued for reading */
	uint64_t		 file_jobs_skipped;	/* queue/open set full */
	uint64_t		 file_jobs_abandoned;	/* connection closed */
	uint64_t		 file_reads;	/* SvmReadFile sent */
	uint64_t		 file_read_bytes;
	uint64_t		 files_read;	/* read whole, to eof */
	uint64_t		 file_read_errors;	/* files given up */
	uint64_t		 file_read_errno[SVM_READ_ERR_N];
	uint64_t		 file_read_retries;	/* EAGAIN asked again */
	uint64_t		 file_read_pauses;	/* waited for clamd */
	uint64_t		 file_data_unknown;	/* no read in flight */
	uint64_t		 files_written;	/* --read-files */
	uint64_t		 file_write_errors;
	uint64_t		 scans;		/* clamd connections started */
	uint64_t		 scan_found;
	uint64_t		 scan_clean;
	uint64_t		 scan_errors;
	uint64_t		 scans_abandoned;
	uint64_t		 remediations_sent;
	uint64_t		 remediation_ok;
	uint64_t		 remediation_failed;
	uint64_t		 remediations_skipped;
	uint64_t		 connections;
	uint64_t		 connections_refused;
	uint64_t		 registered;
	uint64_t		 rejects;
	uint64_t		 protocol_errors;
	uint64_t		 tls_errors;	/* handshakes failed, TLS errors */
	uint64_t		 timeouts;	/* hello, registered or silence */
	uint64_t		 start_ns;	/* CLOCK_MONOTONIC */
	uint64_t		 first_rx_ns;	/* CLOCK_MONOTONIC, 0 none */
	uint64_t		 last_rx_ns;
	uint64_t		 last_latency_us;
	struct svm_hist		 latency;
};

enum svm_conn_state {
	SVM_CONN_HELLO = 0,	/* waiting for MuxHello */
	SVM_CONN_REGISTERING,	/* Register sent, waiting for Registered */
	SVM_CONN_REGISTERED,
};

struct svm_policy_conn;
struct svm_read_conn;

/* What a file job does with the content it reads. */
#define SVM_FILE_WRITE		0x1	/* --read-files: DIR/<cid>-<file_id> */
#define SVM_FILE_SCAN		0x2	/* stream to clamd */

enum svm_file_state {
	SVM_FILE_QUEUED = 0,	/* waiting for a read (and a clamd) slot */
	SVM_FILE_READING,	/* a SvmReadFile in flight */
	SVM_FILE_RETRY,		/* EAGAIN: asked again at retry_ms */
	SVM_FILE_PAUSED,	/* clamd has not taken enough yet */
	SVM_FILE_SCANNING,	/* read ended, waiting for clamd's reply */
	SVM_FILE_DEAD,		/* ended or abandoned, freed from the loop */
};

enum svm_scan_result {
	SVM_SCAN_NONE = 0,	/* not scanned, or no reply yet */
	SVM_SCAN_CLEAN,
	SVM_SCAN_FOUND,
	SVM_SCAN_ERROR,
};

struct svm_file {
	struct svm_conn		*conn;
	enum svm_file_state	 state;
	unsigned		 want;		/* SVM_FILE_* still wanted */
	uint64_t		 seq;
	uint64_t		 epoch;		/* the seq's (resume point) */
	uint32_t		 cid;
	uint64_t		 file_id;
	int			 verdict;	/* a verdict owed at the end */
	int			 path_deny;	/* deny-path matched */
	int			 is_file;	/* a FileEvent (remediable) */
	int			 slot;		/* holds a read slot */
	int			 cancel;	/* no more reads wanted */

	/* Reading (svm-read.c). */
	uint64_t		 request_id;	/* read in flight, 0 none */
	uint64_t		 offset;	/* next byte wanted */
	uint32_t		 asked;		/* length in flight */
	unsigned		 retries;
	uint64_t		 retry_ms;
	int			 read_done;	/* eof reached */
	int			 read_error;	/* errno, -1 bad reply; 0 none */
	uint64_t		 bytes;

	/* --read-files sink (svm-read.c). */
	int			 fd;		/* -1 none */
	struct evp_md_ctx_st	*md;		/* SHA-256 */

	/* Scan (svm-scan.c). */
	struct bufferevent	*clamd;
	int			 scan_slot;	/* holds a clamd slot */
	int			 scan_started;	/* counted in scans */
	enum svm_scan_result	 scan;
	char			 scan_detail[SVM_SCAN_REPLY_MAX];

	TAILQ_ENTRY(svm_file)	 entry;		/* queue, active or dead */
};
TAILQ_HEAD(svm_files, svm_file);

struct svm_conn {
	uint64_t		 id;
	char			 peer[128];	/* "addr:port", for log lines */
	struct bufferevent	*bev;
	enum svm_conn_state	 state;
	int			 closing;
	int			 backlog;	/* drain yielded with frames left */
	int			 tls_up;	/* TLS handshake completed */

	struct event		*drain_ev;	/* resumes a yielded drain */
	struct event		*timer_ev;	/* heartbeats and timeouts */
	struct event		*ack_ev;	/* --ack-delay-ms */

	uint32_t		 heartbeat_ms;
	uint64_t		 since_ms;	/* state entered (monotonic) */
	uint64_t		 last_rx_ms;
	uint64_t		 last_tx_ms;
	uint64_t		 hello_epoch;
	struct svm_resume	*resume;	/* of the MUX's host_id, or NULL */
	uint64_t		 reg_resume_epoch;	/* as sent in Register */
	uint64_t		 reg_resume_from;
	uint64_t		 gap_logged_ms;

	struct svm_track	 track;
	uint64_t		 processed;	/* highest seq to acknowledge */
	uint64_t		 acked;		/* last Ack sent */
	int64_t			 sleep_debt_us;	/* --process-us owed (<0: ahead) */

	struct svm_policy_conn	*policy;
	struct svm_read_conn	*reads;
	uint64_t		 next_request_id; /* SvmReadFile, SvmRemediate */
	TAILQ_ENTRY(svm_conn)	 entry;
};
TAILQ_HEAD(svm_conns, svm_conn);

/* svm.c */
extern struct event_base	*svm_base;
extern struct svm_options	 svm_opt;
extern struct svm_stats		 svm_stats;
extern struct svm_conns		 svm_conns;
extern struct frame_arena	 svm_arena;
extern FILE			*svm_record;
uint64_t	svm_now_ms(void);
uint64_t	svm_mono_ns(void);
uint64_t	svm_real_ns(void);
void		svm_log(const char *, ...) __attribute__((format(printf, 1, 2)));
void		svm_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void		svm_fatalx(int, const char *, ...)
		    __attribute__((format(printf, 2, 3), noreturn));
void		svm_reap_later(void);
void		svm_rejected(void);

/* svm-conn.c */
void		svm_conn_accept(int, const struct sockaddr *, int);
void		svm_conn_close(struct svm_conn *, const char *);
void		svm_conn_free(struct svm_conn *);
int		svm_conn_send_verdict(struct svm_conn *, uint64_t, int,
		    const char *);
int		svm_conn_send_read_file(struct svm_conn *, uint64_t, uint64_t,
		    uint64_t, uint32_t);
int		svm_conn_send_remediate(struct svm_conn *, uint64_t, uint64_t,
		    int);

/* svm-check.c */
void		svm_check_registered(struct svm_track *, struct svm_resume *,
		    uint64_t, uint64_t, uint64_t, uint64_t);
enum svm_check_result svm_check_delivery(struct svm_track *, uint64_t);
void		svm_check_gap(struct svm_track *, const Mux__Gap *);
int		svm_check_holes_checked(void);

/* svm-state.c */
struct svm_resume *svm_state_find(const char *);
void		svm_state_load(void);
void		svm_state_flush(void);
void		svm_state_registered(struct svm_resume *, uint64_t, uint64_t);
void		svm_state_processed(struct svm_resume *, uint64_t, uint64_t);
uint64_t	svm_state_resume_epoch(const struct svm_resume *);
uint64_t	svm_state_resume_from(const struct svm_resume *);
int		svm_state_seen(const struct svm_resume *, uint64_t, uint64_t);
int		svm_state_open(struct svm_resume *, uint64_t, uint64_t,
		    uint64_t);
int		svm_state_is_open(const struct svm_resume *, uint64_t,
		    uint64_t);
void		svm_state_done(struct svm_resume *, uint64_t, uint64_t);
void		svm_state_abandon(struct svm_resume *, uint64_t);
void		svm_state_free(void);
const struct svm_resume *svm_state_latest(void);
size_t		svm_state_count(void);

/* svm-policy.c */
int		svm_policy_parse(const char *, struct svm_policy *, char *,
		    size_t);
const char	*svm_policy_name(const struct svm_policy *);
struct svm_policy_conn *svm_policy_conn_new(struct svm_conn *);
void		svm_policy_conn_free(struct svm_policy_conn *);
int		svm_policy_remediate_parse(const char *,
		    struct svm_remediate *);
void		svm_policy_delivery(struct svm_policy_conn *,
		    const Mux__Delivery *);
void		svm_policy_file_done(struct svm_policy_conn *,
		    const struct svm_file *);
void		svm_policy_action_result(struct svm_policy_conn *,
		    const Mux__ActionResult *);

/* svm-read.c */
void		svm_read_check_dir(void);
struct svm_read_conn *svm_read_conn_new(struct svm_conn *);
void		svm_read_conn_abandon(struct svm_read_conn *);
void		svm_read_conn_free(struct svm_read_conn *);
int		svm_read_submit(struct svm_conn *, const Mux__Delivery *,
		    unsigned, int, int);
void		svm_read_file_data(struct svm_read_conn *,
		    const Mux__FileData *);
void		svm_read_scan_writable(struct svm_file *);
void		svm_read_scan_done(struct svm_file *);
void		svm_read_pump_all(void);
void		svm_read_reap(void);
size_t		svm_read_active(void);
const char	*svm_read_err_name(int);

/* svm-scan.c */
int		svm_scan_slot_free(void);
int		svm_scan_begin(struct svm_file *);
int		svm_scan_chunk(struct svm_file *, const void *, size_t);
void		svm_scan_end_stream(struct svm_file *);
void		svm_scan_release(struct svm_file *);

/* svm-tls.c */
void		svm_tls_init(void);
void		svm_tls_free(void);
struct bufferevent *svm_tls_bev_new(struct event_base *, int);
void		svm_tls_connected(struct svm_conn *);
int		svm_tls_failed(struct svm_conn *, short, char *, size_t);

/* svm-vm.c */
void		svm_vm_status(const Mux__VmStatus *);
size_t		svm_vm_known(void);
size_t		svm_vm_connected(void);

/* svm-hist.c */
void		svm_hist_add(struct svm_hist *, uint64_t);
uint64_t	svm_hist_quantile(const struct svm_hist *, double);

/* svm-report.c */
void		svm_report_progress(void);
void		svm_report_final(FILE *);
double		svm_report_rate(void);

#endif
