/*
 * ingest.h: the ingest thread's own types, shared by ingest.c (thread, VM
 * table, ring producer) and agent.c (one agent connection's protocol).
 * Everything here is touched by the ingest thread only.
 */
#ifndef MUX_INGEST_H
#define MUX_INGEST_H

#include <sys/queue.h>

#include "frame.h"
#include "mux.h"
#include "verdict.h"

#define VM_HASH_SIZE		1024
#define SESSION_HASH_SIZE	4096
#define RELAY_MAX_PER_VM	64	/* file reads + remediations in flight */
#define DROP_NOTICE_NS		1000000000ull	/* EVENTS_DROPPED at most 1/s */
#define DROP_LOG_NS		10000000000ull	/* one log line per VM per 10 s */

struct vmci_listener;

struct vm {
	LIST_ENTRY(vm)	 hentry;
	uint32_t	 cid;
	int		 mapped;		/* from the VM map */
	char		 uuid[64];
	char		 name[128];
	uint32_t	 conns;			/* open connections, any state */
	uint32_t	 welcomed;		/* welcomed connections */
	char		 agent_version[64];	/* from the latest welcome */
	char		 claimed_uuid[64];
	uint8_t		 ref[WIRE_VMREF_MAX];	/* VmRef, encoded once */
	size_t		 ref_len;
	int		 status_sent;		/* last VmStatus state sent */
	uint32_t	 pending;		/* verdicts pending, all connections */
	uint32_t	 relays;		/* requests in flight to its agents */
	/* token buckets (protocol section 6): refilled from mono time */
	double		 ev_tokens;
	double		 byte_tokens;
	uint64_t	 bucket_ns;
	/* shedding, announced in-band at most once a second */
	uint64_t	 drop_rate;		/* since the last notice */
	uint64_t	 drop_pending;
	uint64_t	 drop_notice_ns;
	uint64_t	 drop_log_ns;
	int		 dropping;		/* on ing->dropping */
	LIST_ENTRY(vm)	 dentry;
};

struct relay;
TAILQ_HEAD(relay_list, relay);

enum agent_state {
	AGENT_HELLO = 0,	/* waiting for AgentHello */
	AGENT_ACTIVE,		/* welcomed */
	AGENT_FLUSHING,		/* a Reject is being written, then close */
	AGENT_DEAD,		/* closed, waiting for the reaper */
};

struct agent {
	TAILQ_ENTRY(agent) entry;
	struct ingest	*ing;
	struct bufferevent *bev;
	struct event	*timer;		/* heartbeat and hello deadline */
	enum agent_state state;
	uint32_t	 cid;
	struct vm	*vm;
	uint64_t	 session_id;	/* assigned at welcome */
	uint64_t	 last_event_id;
	uint64_t	 last_rx;	/* mono ns */
	uint64_t	 last_tx;	/* mono ns */
	uint64_t	 connected_ns;
	uint64_t	 events;
	uint64_t	 verdicts;
	struct verdict_owner vo;	/* its pending verdicts */
	struct relay_list relays;	/* its requests in flight */
	LIST_ENTRY(agent) sentry;	/* session hash */
	char		 peer[96];	/* "agent cid=N session=S" */
	char		 agent_version[64];
	char		 os[32];
	char		 claimed_uuid[64];
};
TAILQ_HEAD(agent_list, agent);

struct ingest {
	struct mux	*mux;
	const struct config *conf;
	struct event_base *base;
	pthread_t	 thread;
	int		 running;
	struct vmci_listener *listener;
	struct agent_list agents;	/* open */
	struct agent_list dead;		/* closed, reaped from the loop */
	struct event	*reaper;
	struct event	*snap_timer;
	uint32_t	 nagents;
	LIST_HEAD(, vm)	 vms[VM_HASH_SIZE];
	uint64_t	 next_session;
	struct frame_arena arena;	/* decode arena, reset per frame */
	uint8_t		*scratch;	/* one encoded Delivery */
	size_t		 scratch_len;
	uint8_t		*out;		/* one encoded MuxToAgent frame */
	size_t		 out_len;
	uint8_t		*solutions;	/* latest MuxToAgent{solutions} frame */
	size_t		 solutions_len;
	int		 pushed;	/* records appended since last wake */
	struct wire_field *slices;	/* the current batch's encoded events */
	size_t		 nslices_max;

	/* the return path (issue 5) */
	struct verdict_table *vt;
	struct event	*vt_timer;
	struct ingest_decider {
		int		 up;
		uint32_t	 gen;
		int		 verdicts;
		wire_class_mask	 classes;
		uint32_t	*cids;		/* NULL: all VMs */
		size_t		 ncids;
		char		 service_id[CONFIG_STR_MAX];
	} deciders[VERDICT_SLOTS];
	uint64_t	 decider_mask;	/* up with verdicts = true */
	LIST_HEAD(, agent) sessions[SESSION_HASH_SIZE];
	LIST_HEAD(, vm)	 dropping;	/* VMs shedding, for the 1 s notice */
	struct event	*tick;		/* 1 s: drop notices */
	struct relay_list relay_order;	/* all requests, deadline order */
	struct relay	**relay_hash;
	size_t		 relay_nbuckets;
	uint64_t	 next_request_id;
	struct event	*relay_timer;
	int		 default_action;
	struct limits_msg limits;	/* per-VM; a reload changes them */
};

/* ingest.c */
struct vm	*ingest_vm_get(struct ingest *, uint32_t cid, int create);
void		 ingest_vm_event(struct ingest *, struct vm *, Mux__VmEvent__Op,
		    const char *detail);
int		 ingest_event(struct ingest *, struct agent *, Mux__Event *,
		    const struct wire_field *raw, uint64_t ingest_ns, uint64_t now_mono);
void		 ingest_vm_ref(struct vm *);
void		 ingest_vm_status(struct ingest *, struct vm *, Mux__VmStatus__State);
void		 ingest_publish(struct ingest *);
void		 ingest_flush_wake(struct ingest *);

/* ingest.c (return path) */
uint64_t	 ingest_deciders_for(struct ingest *, uint32_t cid, int cls);
int		 ingest_vm_protected(struct ingest *, uint32_t cid);
struct agent	*ingest_session(struct ingest *, uint64_t session);
void		 ingest_arm_vt_timer(struct ingest *);

/* relay.c: file reads and remediation, agent side */
void		 relay_init(struct ingest *);
void		 relay_free(struct ingest *);
void		 relay_request(struct ingest *, const struct svm_request *);
void		 relay_file_data(struct ingest *, struct agent *, const Mux__FileData *);
void		 relay_action_result(struct ingest *, struct agent *,
		    const Mux__ActionResult *);
void		 relay_agent_gone(struct ingest *, struct agent *);
void		 relay_answer_error(struct ingest *, const struct svm_request *,
		    int error, const char *message);

/* agent.c */
void		 agent_accept(struct ingest *, int fd, uint32_t cid, const char *peer);
void		 agent_close(struct agent *, const char *why);
void		 agent_free(struct agent *);
int		 agent_send(struct agent *, const ProtobufCMessage *);
void		 agent_send_raw(struct agent *, const uint8_t *, size_t);
void		 agent_verdict(struct agent *, uint64_t event_id, int action,
		    const char *service_id, const char *reason, int timed_out,
		    uint64_t ingest_ns, enum verdict_source);

#endif
