/*
 * relay.c: file reads and remediation on their way to the guest and back
 * (protocol 3.7 and 4.8), on the ingest thread.
 *
 * The fan-out thread has already checked the request against the ring
 * (seq held, a file event, length <= 32 KiB) and stamped it with the SVM's
 * slot and gen. Here it gets the MUX's own request id, goes to the agent
 * connection the event came from, and is answered exactly once: with the
 * agent's answer, ENOTCONN when that connection is gone (now or later),
 * EAGAIN beyond RELAY_MAX_PER_VM, or ETIMEDOUT after verdict_timeout_ms.
 * Same timeout for all, so a FIFO is the timer queue.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "ingest.h"

#define RELAY_HASH_MIN	256u

struct relay {
	TAILQ_ENTRY(relay) order;
	TAILQ_ENTRY(relay) by_agent;
	struct relay	*hnext;
	uint64_t	 id;
	uint64_t	 deadline;	/* mono ns */
	struct agent	*agent;
	struct svm_request req;
};

static size_t
relay_bucket(const struct ingest *ing, uint64_t id)
{
	return (size_t)(id * 0x9e3779b97f4a7c15ull >> 20) & (ing->relay_nbuckets - 1);
}

static void
relay_timer_cb(evutil_socket_t fd, short ev, void *arg);

void
relay_init(struct ingest *ing)
{
	TAILQ_INIT(&ing->relay_order);
	ing->relay_nbuckets = RELAY_HASH_MIN;
	ing->relay_hash = calloc(ing->relay_nbuckets, sizeof(*ing->relay_hash));
	ing->relay_timer = evtimer_new(ing->base, relay_timer_cb, ing);
	if (ing->relay_hash == NULL || ing->relay_timer == NULL)
		fatal("relay");
}

static void
relay_unlink(struct ingest *ing, struct relay *r)
{
	struct relay **pp = &ing->relay_hash[relay_bucket(ing, r->id)];

	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	TAILQ_REMOVE(&ing->relay_order, r, order);
	TAILQ_REMOVE(&r->agent->relays, r, by_agent);
	r->agent->vm->relays--;
}

void
relay_free(struct ingest *ing)
{
	struct relay *r;

	while ((r = TAILQ_FIRST(&ing->relay_order)) != NULL) {
		relay_unlink(ing, r);
		free(r);
	}
	free(ing->relay_hash);
	if (ing->relay_timer != NULL)
		event_free(ing->relay_timer);
}

static void
relay_post(struct ingest *ing, const struct svm_request *req, int error, int ok,
    const char *message, uint64_t offset, int eof, const void *data, size_t len)
{
	struct mbox_msg *m = mbox_msg_new(MBOX_SVM_ANSWER, sizeof(struct svm_answer) + len);
	struct svm_answer *a = (struct svm_answer *)m->data;

	a->slot = req->slot;
	a->gen = req->gen;
	a->kind = req->kind;
	a->svm_request_id = req->svm_request_id;
	a->offset = offset;
	a->eof = eof;
	a->error = error;
	a->ok = ok;
	snprintf(a->message, sizeof(a->message), "%s", message != NULL ? message : "");
	a->len = len;
	if (len > 0)
		memcpy(a->data, data, len);
	mbox_post(&ing->mux->to_fanout, m);
}

void
relay_answer_error(struct ingest *ing, const struct svm_request *req, int error,
    const char *message)
{
	METRIC_INC(metrics.svm_requests_failed);
	relay_post(ing, req, error, 0, message, req->offset, 1, NULL, 0);
}

static void
relay_arm(struct ingest *ing)
{
	struct relay *r = TAILQ_FIRST(&ing->relay_order);
	uint64_t now = mono_ns(), d;
	struct timeval tv;

	if (r == NULL || evtimer_pending(ing->relay_timer, NULL))
		return;
	d = r->deadline > now ? r->deadline - now : 0;
	tv.tv_sec = (time_t)(d / 1000000000u);
	tv.tv_usec = (suseconds_t)(d % 1000000000u / 1000u) + 1;
	evtimer_add(ing->relay_timer, &tv);
}

void
relay_request(struct ingest *ing, const struct svm_request *req)
{
	Mux__MuxToAgent m = MUX__MUX_TO_AGENT__INIT;
	Mux__ReadFileRequest rf = MUX__READ_FILE_REQUEST__INIT;
	Mux__RemediateRequest rm = MUX__REMEDIATE_REQUEST__INIT;
	struct agent *a = ingest_session(ing, req->session);
	struct relay *r;
	size_t b;

	if (a == NULL || a->state != AGENT_ACTIVE) {
		relay_answer_error(ing, req, ENOTCONN, "agent connection is gone");
		return;
	}
	if (a->vm->relays >= RELAY_MAX_PER_VM) {
		relay_answer_error(ing, req, EAGAIN, "too many requests in flight "
		    "for this VM");
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("relay");
	r->id = ++ing->next_request_id;
	r->deadline = mono_ns() + (uint64_t)ing->conf->verdict_timeout_ms * 1000000u;
	r->agent = a;
	r->req = *req;
	b = relay_bucket(ing, r->id);
	r->hnext = ing->relay_hash[b];
	ing->relay_hash[b] = r;
	TAILQ_INSERT_TAIL(&ing->relay_order, r, order);
	TAILQ_INSERT_TAIL(&a->relays, r, by_agent);
	a->vm->relays++;
	METRIC_INC(metrics.svm_requests);
	if (req->kind == SVM_REQ_READ) {
		rf.request_id = r->id;
		rf.event_id = req->event_id;
		rf.file_id = req->file_id;
		rf.offset = req->offset;
		rf.length = req->length;
		m.msg_case = MUX__MUX_TO_AGENT__MSG_READ_FILE;
		m.read_file = &rf;
	} else {
		rm.request_id = r->id;
		rm.event_id = req->event_id;
		rm.file_id = req->file_id;
		rm.kind = (Mux__RemediationKind)req->remediation;
		m.msg_case = MUX__MUX_TO_AGENT__MSG_REMEDIATE;
		m.remediate = &rm;
	}
	log_debug("%s: %s request %llu for svm slot %d (its id %llu), seq %llu",
	    a->peer, req->kind == SVM_REQ_READ ? "read" : "remediation",
	    (unsigned long long)r->id, req->slot,
	    (unsigned long long)req->svm_request_id, (unsigned long long)req->seq);
	agent_send(a, &m.base);
	relay_arm(ing);
}

static struct relay *
relay_find(struct ingest *ing, struct agent *a, uint64_t id, enum svm_req_kind kind)
{
	struct relay *r;

	for (r = ing->relay_hash[relay_bucket(ing, id)]; r != NULL; r = r->hnext)
		if (r->id == id)
			break;
	/* Late (after a timeout), unknown, or another connection's: ignored. */
	if (r == NULL || r->agent != a || r->req.kind != kind) {
		METRIC_INC(metrics.agent_answers_ignored);
		log_debug("%s: answer to unknown request %llu ignored", a->peer,
		    (unsigned long long)id);
		return NULL;
	}
	return r;
}

void
relay_file_data(struct ingest *ing, struct agent *a, const Mux__FileData *fd)
{
	struct relay *r = relay_find(ing, a, fd->request_id, SVM_REQ_READ);

	if (r == NULL)
		return;
	if (fd->data.len > r->req.length ||
	    (fd->error == 0 && fd->offset != r->req.offset)) {
		/* Not what was asked: bad input. The SVM still gets an answer. */
		relay_unlink(ing, r);
		relay_post(ing, &r->req, EIO, 0, "agent answered another read",
		    r->req.offset, 1, NULL, 0);
		free(r);
		metrics_proto_error(LINK_AGENT, PERR_BAD_FIELD);
		agent_close(a, "protocol error: bad_field: FileData longer than "
		    "requested or at another offset");
		return;
	}
	relay_unlink(ing, r);
	relay_post(ing, &r->req, fd->error, fd->error == 0, NULL, fd->offset,
	    fd->eof, fd->data.data, fd->data.len);
	free(r);
}

void
relay_action_result(struct ingest *ing, struct agent *a, const Mux__ActionResult *ar)
{
	struct relay *r = relay_find(ing, a, ar->request_id, SVM_REQ_REMEDIATE);

	if (r == NULL)
		return;
	relay_unlink(ing, r);
	relay_post(ing, &r->req, 0, ar->ok, ar->message, 0, 1, NULL, 0);
	free(r);
}

/* The connection closed: everything it still owed is answered ENOTCONN. */
void
relay_agent_gone(struct ingest *ing, struct agent *a)
{
	struct relay *r;

	while ((r = TAILQ_FIRST(&a->relays)) != NULL) {
		relay_unlink(ing, r);
		relay_answer_error(ing, &r->req, ENOTCONN, "agent connection closed");
		free(r);
	}
}

static void
relay_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct ingest *ing = arg;
	uint64_t now = mono_ns();
	struct relay *r;

	(void)fd;
	(void)ev;
	while ((r = TAILQ_FIRST(&ing->relay_order)) != NULL && r->deadline <= now) {
		relay_unlink(ing, r);
		log_info("%s: request %llu not answered in %u ms", r->agent->peer,
		    (unsigned long long)r->id, ing->conf->verdict_timeout_ms);
		relay_answer_error(ing, &r->req, ETIMEDOUT, "agent did not answer");
		free(r);
	}
	relay_arm(ing);
}
