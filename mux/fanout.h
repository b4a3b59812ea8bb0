/*
 * fanout.h: the fan-out thread's own types, shared by fanout.c (thread,
 * VM mirror, solution state), svm.c (one SVM session) and batch.c (frame
 * building). Everything here is touched by the fan-out thread only.
 */
#ifndef MUX_FANOUT_H
#define MUX_FANOUT_H

#include <sys/queue.h>
#include <sys/socket.h>

#include "frame.h"
#include "mux.h"

/*
 * One DeliveryBatch being built, already in wire form:
 *   [reserve: frame length + MuxToSvm tag + varint][0x0a varint Delivery]...
 * The header is written right-aligned into the reserve when it is flushed,
 * so a batch costs one copy from the ring and one write to the socket.
 */
#define BATCH_RESERVE	16

struct batch {
	uint8_t		*buf;
	size_t		 cap;
	size_t		 len;		/* bytes after the reserve */
	uint32_t	 count;
	int		 urgent;	/* holds a reply_expected event */
	size_t		 item_start;	/* for batch_item_abort */
};

struct vm_mirror {
	LIST_ENTRY(vm_mirror) entry;
	uint32_t	 cid;
	int		 state;		/* Mux__VmStatus__State */
	int		 connected;	/* an agent connection is up */
	char		 uuid[64];
	char		 name[128];
	char		 agent_version[64];
	char		 claimed_uuid[64];
};

#define SVM_REQUESTS_MAX	256	/* file reads + remediations in flight */
#define SVM_VERDICT_BATCH	512	/* verdicts per message to ingest */

struct svm {
	TAILQ_ENTRY(svm) entry;
	struct fanout	*fo;
	struct config_svm conf;
	int		 slot;		/* fixed, < VERDICT_SLOTS */
	uint32_t	 gen;		/* bumped at each registration */
	uint32_t	 requests_out;
	struct mbox_msg	*vbatch;	/* verdicts collected in one read */
	char		 peer[CONFIG_NAME_MAX + CONFIG_STR_MAX + 16];
	enum svm_state	 state;
	struct bufferevent *bev;
	struct event	*timer;		/* redial / deadlines / heartbeat */
	struct event	*linger;
	uint32_t	 backoff_ms;
	int		 flushing;	/* a Reject is being written */
	struct sockaddr_storage sa;
	socklen_t	 salen;

	/* from Register */
	char		 instance_id[CONFIG_STR_MAX];
	wire_class_mask	 classes;
	uint32_t	*cids;		/* sorted; NULL = all VMs */
	size_t		 ncids;
	int		 verdicts;
	uint32_t	 window;

	/* delivery state */
	uint64_t	 cursor;	/* next seq to look at */
	uint64_t	 acked;
	uint64_t	*inflight;	/* seqs sent and not acked, a ring */
	uint32_t	 if_head;
	uint32_t	 if_count;
	uint32_t	 if_cap;
	struct batch	 batch;
	uint64_t	 last_rx;	/* mono ns */
	uint64_t	 last_tx;
	uint64_t	 last_gap_log;

	/* figures */
	uint64_t	 delivered;
	uint64_t	 batches;
	uint64_t	 gaps;
	uint64_t	 gap_events;
	uint64_t	 connects;
	uint64_t	 rejects;
	uint64_t	 since_ns;
	char		 last_error[160];
};
TAILQ_HEAD(svm_list, svm);

struct fanout {
	struct mux	*mux;
	const struct config *conf;
	struct event_base *base;
	pthread_t	 thread;
	int		 running;
	struct svm_list	 svms;
	LIST_HEAD(, vm_mirror) vms;
	struct ssl_ctx_st *tls;		/* client context; NULL: no TLS entry */
	struct frame_arena arena;	/* SvmToMux decoding */
	struct frame_arena arena2;	/* Deliveries read back from the ring */
	uint8_t		*rbuf;		/* one ring record */
	struct svm	*slots[64];
	struct event	*snap_timer;
	uint64_t	 sol_generation;
	uint8_t		*sol_last;	/* packed solutions, to see changes */
	size_t		 sol_last_len;
	struct bufferevent *dead[64];	/* bufferevents to free from the loop */
	size_t		 ndead;
	struct event	*reaper;
};

/* batch.c */
int	 batch_init(struct batch *, size_t max_bytes, size_t max_item);
void	 batch_free(struct batch *);
void	 batch_reset(struct batch *);
int	 batch_fits(const struct batch *, uint32_t len, uint32_t max_events,
	    size_t max_bytes);
uint8_t	*batch_item_begin(struct batch *, uint32_t len);
void	 batch_item_commit(struct batch *, uint32_t len);
void	 batch_item_abort(struct batch *);
const uint8_t *batch_finish(struct batch *, size_t *framelen);

/* svm.c */
struct svm *svm_new(struct fanout *, const struct svm_entry *);
void	 svm_free(struct svm *);
void	 svm_start(struct svm *);
void	 svm_retire(struct svm *);
void	 svm_pump(struct svm *);
int	 svm_send(struct svm *, const ProtobufCMessage *);
void	 svm_send_vm_status(struct svm *, const struct vm_mirror *);
int	 svm_wants_cid(const struct svm *, uint32_t);
void	 svm_snapshot(const struct svm *, struct snap_svm *);

/* svm.c (return path) */
void	 svm_answer(struct svm *, const struct svm_answer *);

/* fanout.c (fanout_tls_context is in mux.h: main.c's -n uses it too) */
void	 fanout_solutions_changed(struct fanout *);
void	 fanout_publish(struct fanout *);
void	 fanout_defer_free(struct fanout *, struct bufferevent *);
int	 fanout_duplicate(struct fanout *, const struct svm *, const char *service_id,
	    const char *instance_id);

#endif
