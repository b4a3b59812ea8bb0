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

#define VM_HASH_SIZE	1024

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
	int		 status_sent;		/* last VmStatus state sent */
};

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
};

/* ingest.c */
struct vm	*ingest_vm_get(struct ingest *, uint32_t cid, int create);
void		 ingest_vm_event(struct ingest *, struct vm *, Mux__VmEvent__Op,
		    const char *detail);
int		 ingest_event(struct ingest *, struct agent *, Mux__Event *,
		    uint64_t ingest_ns);
void		 ingest_vm_status(struct ingest *, struct vm *, Mux__VmStatus__State);
void		 ingest_publish(struct ingest *);
void		 ingest_flush_wake(struct ingest *);

/* agent.c */
void		 agent_accept(struct ingest *, int fd, uint32_t cid, const char *peer);
void		 agent_close(struct agent *, const char *why);
void		 agent_free(struct agent *);
int		 agent_send(struct agent *, const ProtobufCMessage *);
void		 agent_send_raw(struct agent *, const uint8_t *, size_t);
void		 agent_verdict_default(struct agent *, uint64_t event_id,
		    const char *reason, uint64_t ingest_ns);

#endif
