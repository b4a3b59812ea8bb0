/*
 * svm-policy.c: how mux-svm answers reply_expected deliveries (--verdicts).
 *
 *   allow             ALLOW "allow-all" at once.
 *   deny-path:GLOB    DENY "path matches GLOB" when FileEvent.path or
 *                     ProcessEvent.path matches fnmatch(GLOB, path, 0) (so
 *                     '*' crosses '/'), else ALLOW "path does not match".
 *   delay:MS          ALLOW "delay" MS milliseconds later (one timer per
 *                     connection over a FIFO: every delay is the same).
 *   scan:clamd:SOCK   parsed; refused at start-up until it is written. It
 *                     will read the file through SvmReadFile, so FileData
 *                     and ActionResult already come through here.
 *
 * A policy answers now or later; state it keeps for "later" lives in the
 * connection's svm_policy_conn and dies with it (a closed connection ends
 * the obligation: the MUX answers for a lost decider).
 */
#include <errno.h>
#include <fnmatch.h>
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

struct svm_policy_conn {
	struct svm_conn		*conn;
	TAILQ_HEAD(, svm_delayed) delayed;	/* due order */
	size_t			 ndelayed;
	struct event		*delay_ev;
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

void
svm_policy_delivery(struct svm_policy_conn *pc, const Mux__Delivery *d)
{
	const struct svm_policy *p = &svm_opt.policy;
	const char *path;

	switch (p->kind) {
	case SVM_POLICY_ALLOW:
		svm_conn_send_verdict(pc->conn, d->seq, 0, "allow-all");
		return;
	case SVM_POLICY_DENY_PATH:
		path = svm_policy_event_path(d->event);
		if (path != NULL && fnmatch(p->glob, path, 0) == 0)
			svm_conn_send_verdict(pc->conn, d->seq, 1,
			    p->deny_reason);
		else
			svm_conn_send_verdict(pc->conn, d->seq, 0,
			    "path does not match");
		return;
	case SVM_POLICY_DELAY:
		svm_policy_delay(pc, d->seq);
		return;
	case SVM_POLICY_SCAN:
		/* Refused at start-up; the slot for SvmReadFile + clamd. */
		svm_conn_send_verdict(pc->conn, d->seq, 0,
		    "scan not implemented");
		return;
	}
}

void
svm_policy_file_data(struct svm_policy_conn *pc, const Mux__FileData *fd)
{
	/* Counted by the caller; the scan policy will consume it. */
}

void
svm_policy_action_result(struct svm_policy_conn *pc,
    const Mux__ActionResult *ar)
{
	/* Counted by the caller; remediation is not driven yet. */
}

struct svm_policy_conn *
svm_policy_conn_new(struct svm_conn *c)
{
	struct svm_policy_conn *pc;

	if ((pc = calloc(1, sizeof(*pc))) == NULL)
		return NULL;
	pc->conn = c;
	TAILQ_INIT(&pc->delayed);
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

	if (pc == NULL)
		return;
	while ((d = TAILQ_FIRST(&pc->delayed)) != NULL) {
		TAILQ_REMOVE(&pc->delayed, d, entry);
		free(d);
	}
	event_free(pc->delay_ev);
	free(pc);
}
