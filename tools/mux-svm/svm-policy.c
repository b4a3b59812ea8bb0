/*
 * svm-policy.c: how mux-svm answers reply_expected deliveries (--verdicts),
 * which deliveries have their file read, and remediation.
 *
 *   allow             ALLOW "allow-all" at once.
 *   deny-path:GLOB    DENY "path matches GLOB" when FileEvent.path or
 *                     ProcessEvent.path matches fnmatch(GLOB, path, 0) (so
 *                     '*' crosses '/'), else ALLOW "path does not match".
 *   delay:MS          ALLOW "delay" MS milliseconds later (one timer per
 *                     connection over a FIFO: every delay is the same).
 *   scan:clamd:SOCK   a FileEvent's content is read (svm-read.c) and
 *                     streamed to clamd (svm-scan.c): DENY "clamd: SIG"
 *                     when FOUND, ALLOW "clamd: OK" when clean, no verdict
 *                     at all on a read or clamd error (the MUX's timeout
 *                     gives the default). Other events: ALLOW "not a file".
 *
 * With --read-files every FileEvent is read too; a verdict owed for one
 * is given by the policy when its read ends (whatever the outcome: only
 * the scan policy needs the content).
 *
 * --remediate KIND: every DENY of a FileEvent (deny-path or scan) is
 * followed by SvmRemediate{seq, KIND}; the ActionResult is matched by
 * request id and counted ok or failed.
 *
 * A policy answers now or later; state it keeps for "later" lives in the
 * connection's svm_policy_conn and dies with it (a closed connection ends
 * the obligation: the MUX answers for a lost decider).
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "svm.h"

#define SVM_POLICY_DELAY_MAX_MS	3600000u	/* an hour: beyond is a typo */

struct svm_delayed {
	uint64_t		 seq;
	uint64_t		 due_ms;
	TAILQ_ENTRY(svm_delayed) entry;
};

/* A SvmRemediate waiting for its ActionResult. */
struct svm_remedy {
	uint64_t		 request_id;
	uint64_t		 seq;
	TAILQ_ENTRY(svm_remedy)	 entry;
};

struct svm_policy_conn {
	struct svm_conn		*conn;
	TAILQ_HEAD(, svm_delayed) delayed;	/* due order */
	size_t			 ndelayed;
	struct event		*delay_ev;
	TAILQ_HEAD(, svm_remedy) remedies;	/* sent order */
	size_t			 nremedies;
};

static int
svm_policy_prefix(const char *s, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);

	if (strncmp(s, prefix, n) != 0)
		return 0;
	*rest = s + n;
	return 1;
}

int
svm_policy_parse(const char *s, struct svm_policy *p, char *err, size_t len)
{
	const char *rest;
	char *end;
	unsigned long long ms;
	size_t n;

	free(p->glob);
	free(p->deny_reason);
	free(p->clamd_path);
	memset(p, 0, sizeof(*p));
	if (strcmp(s, "allow") == 0) {
		p->kind = SVM_POLICY_ALLOW;
		return 0;
	}
	if (svm_policy_prefix(s, "deny-path:", &rest)) {
		if (*rest == '\0') {
			snprintf(err, len, "deny-path: empty pattern");
			return -1;
		}
		n = strlen(rest) + sizeof("path matches ");
		p->glob = strdup(rest);
		p->deny_reason = malloc(n);
		if (p->glob == NULL || p->deny_reason == NULL) {
			snprintf(err, len, "out of memory");
			return -1;
		}
		snprintf(p->deny_reason, n, "path matches %s", rest);
		p->kind = SVM_POLICY_DENY_PATH;
		return 0;
	}
	if (svm_policy_prefix(s, "delay:", &rest)) {
		errno = 0;
		ms = strtoull(rest, &end, 10);
		if (*rest < '0' || *rest > '9' || *end != '\0' || errno != 0 ||
		    ms > SVM_POLICY_DELAY_MAX_MS) {
			snprintf(err, len, "delay: want 0..%u milliseconds: %s",
			    SVM_POLICY_DELAY_MAX_MS, rest);
			return -1;
		}
		p->kind = SVM_POLICY_DELAY;
		p->delay_ms = ms;
		return 0;
	}
	if (svm_policy_prefix(s, "scan:clamd:", &rest)) {
		if (*rest == '\0') {
			snprintf(err, len, "scan:clamd: empty socket path");
			return -1;
		}
		if ((p->clamd_path = strdup(rest)) == NULL) {
			snprintf(err, len, "out of memory");
			return -1;
		}
		p->kind = SVM_POLICY_SCAN;
		return 0;
	}
	snprintf(err, len, "unknown policy: %s "
	    "(allow|deny-path:GLOB|delay:MS|scan:clamd:SOCKET)", s);
	return -1;
}

int
svm_policy_remediate_parse(const char *s, struct svm_remediate *r)
{
	static const struct svm_remediate kinds[] = {
		{ MUX__REMEDIATION_KIND__DELETE,	"delete" },
		{ MUX__REMEDIATION_KIND__QUARANTINE,	"quarantine" },
		{ MUX__REMEDIATION_KIND__DENY_ACCESS,	"deny_access" },
	};
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(s, kinds[i].name) == 0) {
			*r = kinds[i];
			return 0;
		}
	return -1;
}

const char *
svm_policy_name(const struct svm_policy *p)
{
	switch (p->kind) {
	case SVM_POLICY_ALLOW:
		return "allow";
	case SVM_POLICY_DENY_PATH:
		return "deny-path";
	case SVM_POLICY_DELAY:
		return "delay";
	case SVM_POLICY_SCAN:
		return "scan";
	}
	return "unknown";
}

static void
svm_policy_delay_arm(struct svm_policy_conn *pc)
{
	struct svm_delayed *d = TAILQ_FIRST(&pc->delayed);
	struct timeval tv;
	uint64_t now, wait = 0;

	if (d == NULL)
		return;
	now = svm_now_ms();
	if (d->due_ms > now)
		wait = d->due_ms - now;
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	evtimer_add(pc->delay_ev, &tv);
}

static void
svm_policy_delay_cb(evutil_socket_t fd, short events, void *arg)
{
	struct svm_policy_conn *pc = arg;
	struct svm_delayed *d;
	uint64_t now = svm_now_ms();

	while ((d = TAILQ_FIRST(&pc->delayed)) != NULL && d->due_ms <= now) {
		TAILQ_REMOVE(&pc->delayed, d, entry);
		pc->ndelayed--;
		svm_conn_send_verdict(pc->conn, d->seq, 0, "delay");
		free(d);
	}
	svm_policy_delay_arm(pc);
}

static void
svm_policy_delay(struct svm_policy_conn *pc, uint64_t seq)
{
	struct svm_delayed *d;

	/* Bounded: past the cap the MUX's timeout answers instead. */
	if (pc->ndelayed >= SVM_DELAY_PENDING_MAX ||
	    (d = malloc(sizeof(*d))) == NULL) {
		svm_stats.verdicts_dropped++;
		return;
	}
	d->seq = seq;
	d->due_ms = svm_now_ms() + svm_opt.policy.delay_ms;
	TAILQ_INSERT_TAIL(&pc->delayed, d, entry);
	pc->ndelayed++;
	if (!evtimer_pending(pc->delay_ev, NULL))
		svm_policy_delay_arm(pc);
}

static const char *
svm_policy_event_path(const Mux__Event *e)
{
	switch (e->body_case) {
	case MUX__EVENT__BODY_FILE:
		return e->file->path;
	case MUX__EVENT__BODY_PROCESS:
		return e->process->path;
	default:
		return NULL;
	}
}

static int
svm_policy_path_denies(const Mux__Event *e)
{
	const struct svm_policy *p = &svm_opt.policy;
	const char *path;

	if (p->kind != SVM_POLICY_DENY_PATH)
		return 0;
	path = svm_policy_event_path(e);
	return path != NULL && fnmatch(p->glob, path, 0) == 0;
}

/* DENY, then --remediate for a FileEvent. */
static void
svm_policy_deny(struct svm_policy_conn *pc, uint64_t seq, int is_file,
    const char *reason)
{
	struct svm_conn *c = pc->conn;
	struct svm_remedy *r;

	if (svm_conn_send_verdict(c, seq, 1, reason) != 0 ||
	    svm_opt.remediate.kind == 0 || !is_file)
		return;
	/* Bounded: the MUX refuses beyond its own limits anyway. */
	if (pc->nremedies >= SVM_REMEDIATE_MAX ||
	    (r = malloc(sizeof(*r))) == NULL) {
		svm_stats.remediations_skipped++;
		return;
	}
	r->request_id = ++c->next_request_id;
	r->seq = seq;
	if (svm_conn_send_remediate(c, r->request_id, seq,
	    svm_opt.remediate.kind) != 0) {
		free(r);
		return;
	}
	TAILQ_INSERT_TAIL(&pc->remedies, r, entry);
	pc->nremedies++;
}

/* The verdict of the policies that do not need the content. */
static void
svm_policy_answer(struct svm_policy_conn *pc, uint64_t seq, int is_file,
    int path_deny)
{
	const struct svm_policy *p = &svm_opt.policy;

	switch (p->kind) {
	case SVM_POLICY_ALLOW:
		svm_conn_send_verdict(pc->conn, seq, 0, "allow-all");
		return;
	case SVM_POLICY_DENY_PATH:
		if (path_deny)
			svm_policy_deny(pc, seq, is_file, p->deny_reason);
		else
			svm_conn_send_verdict(pc->conn, seq, 0,
			    "path does not match");
		return;
	case SVM_POLICY_DELAY:
		svm_policy_delay(pc, seq);
		return;
	case SVM_POLICY_SCAN:
		/* File events go through svm-read.c; this is the rest. */
		svm_conn_send_verdict(pc->conn, seq, 0, "not a file");
		return;
	}
}

/* Every new delivery: read its file, answer it, or neither. */
void
svm_policy_delivery(struct svm_policy_conn *pc, const Mux__Delivery *d)
{
	const Mux__Event *e = d->event;
	int is_file = e->body_case == MUX__EVENT__BODY_FILE;
	int verdict = svm_opt.verdicts && e->reply_expected;
	int path_deny = svm_policy_path_denies(e);
	unsigned want = 0;

	if (is_file && svm_opt.read_dir != NULL)
		want |= SVM_FILE_WRITE;
	if (is_file && verdict && svm_opt.policy.kind == SVM_POLICY_SCAN)
		want |= SVM_FILE_SCAN;
	if (want != 0) {
		if (svm_read_submit(pc->conn, d, want, verdict, path_deny) == 0)
			return;
		/* Skipped (counted): a scan has nothing to go on. */
		if (want & SVM_FILE_SCAN)
			return;
	}
	if (verdict)
		svm_policy_answer(pc, d->seq, is_file, path_deny);
}

/* A file job ended (read, written, scanned, or failed): its verdict. */
void
svm_policy_file_done(struct svm_policy_conn *pc, const struct svm_file *f)
{
	char reason[SVM_SCAN_REPLY_MAX + 16];

	if (!f->verdict)
		return;
	if (svm_opt.policy.kind != SVM_POLICY_SCAN) {
		svm_policy_answer(pc, f->seq, f->is_file, f->path_deny);
		return;
	}
	switch (f->scan) {
	case SVM_SCAN_CLEAN:
		svm_conn_send_verdict(pc->conn, f->seq, 0, "clamd: OK");
		return;
	case SVM_SCAN_FOUND:
		snprintf(reason, sizeof(reason), "clamd: %s", f->scan_detail);
		svm_policy_deny(pc, f->seq, f->is_file, reason);
		return;
	case SVM_SCAN_NONE:
	case SVM_SCAN_ERROR:
		/* Counted and logged by svm-read.c; the MUX answers. */
		return;
	}
}

void
svm_policy_action_result(struct svm_policy_conn *pc,
    const Mux__ActionResult *ar)
{
	struct svm_conn *c = pc->conn;
	struct svm_remedy *r;

	TAILQ_FOREACH(r, &pc->remedies, entry)
		if (r->request_id == ar->request_id)
			break;
	if (r == NULL) {
		svm_stats.action_results_unknown++;
		return;
	}
	TAILQ_REMOVE(&pc->remedies, r, entry);
	pc->nremedies--;
	if (ar->ok)
		svm_stats.remediation_ok++;
	else {
		svm_stats.remediation_failed++;
		svm_warn("conn %" PRIu64 " %s: seq %" PRIu64 ": %s failed: "
		    "%.200s", c->id, c->peer, r->seq, svm_opt.remediate.name,
		    ar->message);
	}
	free(r);
}

struct svm_policy_conn *
svm_policy_conn_new(struct svm_conn *c)
{
	struct svm_policy_conn *pc;

	if ((pc = calloc(1, sizeof(*pc))) == NULL)
		return NULL;
	pc->conn = c;
	TAILQ_INIT(&pc->delayed);
	TAILQ_INIT(&pc->remedies);
	if ((pc->delay_ev = evtimer_new(svm_base, svm_policy_delay_cb,
	    pc)) == NULL) {
		free(pc);
		return NULL;
	}
	return pc;
}

void
svm_policy_conn_free(struct svm_policy_conn *pc)
{
	struct svm_delayed *d;
	struct svm_remedy *r;

	if (pc == NULL)
		return;
	while ((d = TAILQ_FIRST(&pc->delayed)) != NULL) {
		TAILQ_REMOVE(&pc->delayed, d, entry);
		free(d);
	}
	while ((r = TAILQ_FIRST(&pc->remedies)) != NULL) {
		TAILQ_REMOVE(&pc->remedies, r, entry);
		free(r);
	}
	event_free(pc->delay_ev);
	free(pc);
}
