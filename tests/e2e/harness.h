/*
 * harness.h: end-to-end test helpers. Each test starts the real binaries
 * (muxd, mux-svm, mux-loadgen, muxctl) from $MUX_BIN over the unix backend
 * in a fresh temporary folder, and every process it starts is ended (by
 * PID) when the test finishes, whatever happens.
 *
 * Inside the vsock guest (tests/vsock, docs/vsock.md) the environment says
 * MUX_E2E_TRANSPORT=vsock: muxd then listens with transport = vsock and
 * every agent connects to vsock:1:PORT, so all agents are one VM (CID 1).
 * MUX_E2E_FILTER=GLOB runs only the matching tests of a binary.
 */
#ifndef MUX_E2E_HARNESS_H
#define MUX_E2E_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/types.h>

#define E2E_MAX_PROCS	32
#define E2E_VSOCK_CID	1	/* every loopback peer inside the guest */
#define E2E_VSOCK_CONNS_PER_VM 256	/* all agents share CID 1 there */

struct e2e {
	char	 dir[256];		/* scratch folder */
	char	 bin[256];		/* where the binaries are */
	char	 conf[300];		/* muxd.conf */
	char	 agent_sock[300];
	char	 ctl_sock[300];
	pid_t	 muxd;
	pid_t	 pids[E2E_MAX_PROCS];
	char	 names[E2E_MAX_PROCS][64];
	int	 npids;
	int	 sanitized;		/* built with sanitizers: allow more time */
	/* Transport (see the top): agents reach muxd at agent_addr. */
	int	 vsock;			/* MUX_E2E_TRANSPORT=vsock */
	unsigned int agent_port;	/* vsock only */
	char	 agent_addr[320];	/* "unix:PATH" or "vsock:1:PORT" */
};

/* One line of a mux-svm --record file. */
struct rec {
	uint64_t seq;		/* deliveries; for gaps: first */
	uint64_t last;		/* gaps only */
	uint32_t cid;
	uint64_t session;
	uint64_t event_id;
	int	 cls;
	int	 reply;
	int	 gap;		/* 1 for a GAP line */
	int	 reason;	/* gap reason */
};

/* One line of a mux-loadgen --record file. */
struct sent {
	uint32_t cid;
	uint64_t session;
	uint64_t event_id;
	int	 cls;
	int	 reply;
};

int	 e2e_setup(void **state);
int	 e2e_teardown(void **state);
/*
 * Writes muxd.conf: the transport (unix in the scratch folder, or vsock),
 * then `extra`. On vsock every agent is CID 1, so unless `extra` sets
 * agent_max_connections_per_vm it is raised to E2E_VSOCK_CONNS_PER_VM.
 */
void	 e2e_conf(struct e2e *, const char *extra);
/* The address agents and mux-loadgen --connect use: e->agent_addr. */
const char *e2e_agent_addr(struct e2e *);
/* In the vsock guest: skips the calling test, saying why (cmocka skip). */
void	 e2e_skip_on_vsock(struct e2e *, const char *why);
pid_t	 e2e_spawn(struct e2e *, const char *name, const char *const argv[]);
pid_t	 e2e_start_muxd(struct e2e *);
/* mux-svm on 127.0.0.1:port, --tls-off --json --quiet, then extra. */
pid_t	 e2e_start_svm(struct e2e *, const char *name, int port,
	    const char *const extra[]);
/* The same with TLS: extra gives --cert, --key and --ca. */
pid_t	 e2e_start_svm_tls(struct e2e *, const char *name, int port,
	    const char *const extra[]);
/* Runs mux-loadgen to completion; returns its exit status. */
int	 e2e_run_loadgen(struct e2e *, const char *name, const char *const extra[]);
int	 e2e_wait_exit(pid_t, int timeout_ms, int *status);
void	 e2e_stop(struct e2e *, pid_t, int sig);
int	 e2e_wait_path(const char *, int timeout_ms);
int	 e2e_free_port(void);
/* Runs muxctl; stdout into out (NUL-terminated); returns exit status. */
int	 e2e_muxctl(struct e2e *, char *out, size_t outlen, const char *const args[]);
/* Waits until every svm is up (n of them) / until lag and in-flight are 0. */
int	 e2e_wait_svms_up(struct e2e *, int n, int timeout_ms);
int	 e2e_wait_drained(struct e2e *, int timeout_ms);
/* The last line of path that starts with '{'. */
int	 e2e_last_json(const char *path, char *buf, size_t len);
int64_t	 e2e_json_i64(const char *json, const char *key);
double	 e2e_json_f(const char *json, const char *key);
char	*e2e_path(struct e2e *, const char *name);	/* static buffer ring */
size_t	 e2e_read_records(const char *path, struct rec **out);
size_t	 e2e_read_sent(const char *path, struct sent **out);
uint64_t e2e_metric(struct e2e *, const char *name_and_labels);
long	 e2e_rss_kib(pid_t);
int	 e2e_timeout_ms(struct e2e *, int ms);
/* A raw agent: connect (unix: with the CID line; vsock: the kernel says
 * CID 1 whatever cid is); returns a blocking fd. */
int	 e2e_raw_agent(struct e2e *, uint32_t cid);
int	 e2e_send_frame(int fd, const void *body, uint32_t len);
/*
 * Raw agents speaking the protocol by hand (what mux-loadgen never does).
 * The messages are protobuf-c's (mux.pb-c.h, included by the tests).
 */
struct Mux__AgentMessage;
struct Mux__MuxToAgent;
void	 e2e_agent_send(int fd, const struct Mux__AgentMessage *);
/* One whole frame, or NULL on timeout, EOF or garbage; free_unpacked it. */
struct Mux__MuxToAgent *e2e_agent_read(int fd, int timeout_ms);
/* Reads until a frame of msg_case `want` (0 on success; out may be NULL). */
int	 e2e_agent_read_until(int fd, int want, struct Mux__MuxToAgent **out);
void	 e2e_agent_send_hello(int fd, uint32_t version, const char *claimed_uuid);
/* Hello (version 1), then the welcome and the SolutionState; returns the
 * session id and stores the welcome's CID. */
uint64_t e2e_agent_handshake(int fd, uint32_t *cid);
/* n FileEvent OPENs of path in one EventBatch frame, ids first_id.. */
void	 e2e_agent_file_events(int fd, uint64_t first_id, size_t n, int reply,
	    const char *path);
/*
 * One SVM's --record against loadgen's --record: seqs ascend (with no hole
 * at all for a subscriber of every class and VM), event ids ascend per
 * session, nothing outside the subscription (class mask, cids; ncids 0 =
 * all), and exactly the matching agent events, each once. Returns the VM
 * events seen. Fails the test otherwise.
 */
size_t	 e2e_check_record(struct e2e *, const char *name, const struct rec *,
	    size_t, const struct sent *, size_t, uint32_t class_mask,
	    const uint32_t *cids, size_t ncids);
/* 1 when fd has something to read (or EOF) within timeout_ms. */
int	 e2e_readable(int fd, int timeout_ms);
/* Reads frames until EOF or timeout; 1 when the peer closed. */
int	 e2e_wait_closed(int fd, int timeout_ms);

#endif
