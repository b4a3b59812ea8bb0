/*
 * verdict.h: pending verdicts and their aggregation (protocol section 6).
 *
 * Owned by the ingest thread. Pure logic: no sockets, no libevent, the
 * clock is passed in (unit tests use a fake one).
 *
 * An event with reply_expected that has deciders (up SVMs registered with
 * verdicts = true, subscribed to its class and VM) becomes a pending entry:
 *
 *   need     slots of the deciders that have not answered yet
 *   allowed  how many deciders said ALLOW (an ALLOW before a loss counts)
 *
 *   DENY from a decider in `need`      -> DENY at once (its service_id)
 *   ALLOW and `need` becomes empty     -> ALLOW (the last allower's)
 *   a decider lost, `need` empty, no ALLOW yet -> default, "decider-lost"
 *   a decider lost, `need` empty, some ALLOW   -> ALLOW
 *   deadline (ingest + timeout) passed  -> default, "timeout", timed_out
 *   the connection closed               -> dropped, no verdict (the
 *                                          obligation ends with it)
 *
 * Timeouts: every entry has the same timeout, so entries are created in
 * deadline order and a FIFO list is a priority queue with O(1) insert,
 * removal and expiry: it stays cheap at 100,000 pending verdicts. Lookup by
 * seq is a chained hash.
 */
#ifndef MUX_VERDICT_H
#define MUX_VERDICT_H

#include <stdint.h>
#include <sys/queue.h>

#define VERDICT_SLOTS	64	/* SVM slots: one bit each in a mask */

struct pending;
TAILQ_HEAD(pending_list, pending);

/* What a connection embeds so that its pendings go when it closes. */
struct verdict_owner {
	struct pending_list list;
	uint32_t	count;
	uint32_t	*shared;	/* a per-VM counter, also kept, or NULL */
};

enum verdict_outcome {
	VERDICT_IGNORED = 0,	/* unknown seq, not a decider, already decided */
	VERDICT_COUNTED,	/* an ALLOW, more deciders to hear from */
	VERDICT_DECIDED,	/* the verdict was emitted */
};

/*
 * Called for every verdict the table decides. slot is the decider's slot,
 * or -1 for a default verdict (then action is the configured default).
 */
typedef void (*verdict_emit_fn)(void *arg, struct verdict_owner *owner,
    uint64_t event_id, int action, int slot, const char *reason,
    int timed_out, uint64_t ingest_ns);

struct verdict_table;

/* verdict.c */
struct verdict_table *verdict_table_new(uint64_t timeout_ns, int default_action,
	    verdict_emit_fn, void *arg);
void	 verdict_table_free(struct verdict_table *);
void	 verdict_owner_init(struct verdict_owner *, uint32_t *shared);
int	 verdict_add(struct verdict_table *, uint64_t seq, uint64_t event_id,
	    struct verdict_owner *, uint64_t need, uint64_t ingest_ns,
	    uint64_t now_mono);
enum verdict_outcome verdict_answer(struct verdict_table *, uint64_t seq, int slot,
	    int action, const char *reason);
size_t	 verdict_lose_slot(struct verdict_table *, int slot);
void	 verdict_drop_owner(struct verdict_table *, struct verdict_owner *);
size_t	 verdict_expire(struct verdict_table *, uint64_t now_mono);
uint64_t verdict_next_deadline(const struct verdict_table *);	/* 0: none */
size_t	 verdict_count(const struct verdict_table *);

#endif
