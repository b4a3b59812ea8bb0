/*
 * svm-read.c: reading a guest file through the MUX (protocol 4.8), and
 * --read-files.
 *
 * A file job (struct svm_file, svm.h) reads one FileEvent's file whole:
 * SvmReadFile{our request id, seq, offset, SVM_READ_CHUNK} from offset 0,
 * one request in flight per file, the next asked when the previous
 * answer arrives, until eof. Every FileData is checked: it must answer the
 * read in flight (request id), at the offset asked, with no more than the
 * length asked, and make progress unless it says eof; else the file is a
 * bad reply (file_read_errno[SVM_READ_BAD]). A FileData error gives the
 * file up, counted by errno; EAGAIN (the MUX's in-flight limits) is asked
 * again SVM_READ_RETRIES times, SVM_READ_RETRY_MS apart, first.
 *
 * Content is streamed, never assembled: each chunk goes to the sinks the
 * job wants and is dropped.
 *   SVM_FILE_WRITE  --read-files DIR: DIR/.<cid>-<file_id>.<seq>.tmp,
 *                   renamed to DIR/<cid>-<file_id> at eof (a later event
 *                   on the same file replaces it whole), with SHA-256 as
 *                   it goes; "FILE seq cid file_id size sha256" in the
 *                   --record file. A plain blocking write(2): local disk.
 *   SVM_FILE_SCAN   clamd INSTREAM (svm-scan.c). When clamd has not taken
 *                   SVM_SCAN_OUT_MAX bytes yet the job pauses and asks for
 *                   the next chunk when it has: memory stays bounded.
 *
 * Limits (per connection): --reads files hold a read slot at once, at most
 * SVM_READS_PER_VM of them of one VM; the rest wait in arrival order, at
 * most SVM_READ_QUEUE_MAX (then skipped and counted, like a job whose seq
 * does not fit the resume point's open set). A job that scans also needs
 * a clamd slot (process-wide, --scans) before it starts reading, so a
 * file is never half read while it waits for clamd.
 *
 * The job ends once its read ended (eof, error, or cancelled because
 * nothing is wanted any more) and, for a scan, clamd answered. Then, in
 * that order: clamd's outcome is counted (scan_clean, scan_found or
 * scan_errors with one line), the policy gives the verdict (svm-policy.c),
 * the seq is finished in the resume point, and the job goes to the dead
 * list, freed from the loop. A connection that closes abandons its jobs
 * (file_jobs_abandoned, scans_abandoned; temporary files removed).
 *
 * Slots are handed out by a pump that runs from the loop (pump_ev), never
 * from inside a job's end, so ends and starts do not recurse.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "svm.h"

/* Log lines about read errors per process, then one a second. */
#define SVM_READ_LOG_BURST	20
/* Busy VMs one pump pass remembers before it gives up. */
#define SVM_READ_PUMP_BUSY	16

struct svm_read_conn {
	struct svm_conn		*conn;
	struct svm_files	 queue;		/* waiting, arrival order */
	size_t			 nqueue;
	struct svm_files	 active;	/* started, not ended */
	size_t			 nslots;	/* read slots held */
	struct event		*pump_ev;
	struct event		*retry_ev;
	int			 abandoned;
};

static struct svm_files	svm_read_dead = TAILQ_HEAD_INITIALIZER(svm_read_dead);
static unsigned		svm_read_logged;
static uint64_t		svm_read_logged_ms;

static void	svm_read_next(struct svm_read_conn *, struct svm_file *);
static void	svm_read_end(struct svm_read_conn *, struct svm_file *);

static const char *const svm_read_err_names[SVM_READ_ERR_N] = {
	"ENOENT", "EINVAL", "ENOTCONN", "ETIMEDOUT", "EAGAIN", "other",
	"bad_reply",
};

const char *
svm_read_err_name(int i)
{
	return i >= 0 && i < SVM_READ_ERR_N ? svm_read_err_names[i] : "?";
}

static enum svm_read_err
svm_read_err_of(int error)
{
	switch (error) {
	case -1:
		return SVM_READ_BAD;
	case ENOENT:
		return SVM_READ_ENOENT;
	case EINVAL:
		return SVM_READ_EINVAL;
	case ENOTCONN:
		return SVM_READ_ENOTCONN;
	case ETIMEDOUT:
		return SVM_READ_ETIMEDOUT;
	case EAGAIN:
		return SVM_READ_EAGAIN;
	default:
		return SVM_READ_OTHER;
	}
}

/* Overload makes errors by the thousand: a burst, then one a second. */
static int
svm_read_may_log(void)
{
	uint64_t now = svm_now_ms();

	if (svm_read_logged < SVM_READ_LOG_BURST) {
		svm_read_logged++;
		return 1;
	}
	if (now - svm_read_logged_ms >= 1000) {
		svm_read_logged_ms = now;
		return 1;
	}
	return 0;
}

void
svm_read_check_dir(void)
{
	struct stat st;

	if (stat(svm_opt.read_dir, &st) != 0)
		svm_fatalx(1, "--read-files %s: %s", svm_opt.read_dir,
		    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		svm_fatalx(1, "--read-files %s: not a directory",
		    svm_opt.read_dir);
	if (access(svm_opt.read_dir, W_OK | X_OK) != 0)
		svm_fatalx(1, "--read-files %s: %s", svm_opt.read_dir,
		    strerror(errno));
}

/* --- the --read-files sink --- */

static int
svm_read_sink_path(const struct svm_file *f, int tmp, char *buf, size_t len)
{
	int n;

	if (tmp)
		n = snprintf(buf, len, "%s/.%u-%" PRIu64 ".%" PRIu64 ".tmp",
		    svm_opt.read_dir, f->cid, f->file_id, f->seq);
	else
		n = snprintf(buf, len, "%s/%u-%" PRIu64, svm_opt.read_dir,
		    f->cid, f->file_id);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void
svm_read_sink_failed(struct svm_file *f, const char *what, int error)
{
	svm_stats.file_write_errors++;
	svm_warn("seq %" PRIu64 " cid %u file %" PRIu64 ": %s: %s", f->seq,
	    f->cid, f->file_id, what, strerror(error));
	f->want &= ~SVM_FILE_WRITE;
}

static void
svm_read_sink_abort(struct svm_file *f)
{
	char tmp[PATH_MAX];

	if (f->fd < 0)
		return;
	close(f->fd);
	f->fd = -1;
	if (svm_read_sink_path(f, 1, tmp, sizeof(tmp)) == 0)
		unlink(tmp);
}

static void
svm_read_sink_open(struct svm_file *f)
{
	char tmp[PATH_MAX];

	if (svm_read_sink_path(f, 1, tmp, sizeof(tmp)) != 0) {
		svm_read_sink_failed(f, "path", ENAMETOOLONG);
		return;
	}
	if ((f->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(f->md, EVP_sha256(), NULL) != 1) {
		svm_read_sink_failed(f, "SHA-256", ENOMEM);
		return;
	}
	if ((f->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644)) == -1)
		svm_read_sink_failed(f, tmp, errno);
}

static void
svm_read_sink_write(struct svm_file *f, const uint8_t *p, size_t len)
{
	ssize_t n;

	if (EVP_DigestUpdate(f->md, p, len) != 1) {
		svm_read_sink_abort(f);
		svm_read_sink_failed(f, "SHA-256", EINVAL);
		return;
	}
	while (len > 0) {
		if ((n = write(f->fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			svm_read_sink_abort(f);
			svm_read_sink_failed(f, "write", errno);
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

/* eof: the file goes in place whole, and its digest to the record. */
static void
svm_read_sink_finish(struct svm_file *f)
{
	char tmp[PATH_MAX], path[PATH_MAX], hex[2 * EVP_MAX_MD_SIZE + 1];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0, i;
	int fd = f->fd;

	f->fd = -1;
	if (svm_read_sink_path(f, 1, tmp, sizeof(tmp)) != 0 ||
	    svm_read_sink_path(f, 0, path, sizeof(path)) != 0) {
		close(fd);
		svm_read_sink_failed(f, "path", ENAMETOOLONG);
		return;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		svm_read_sink_failed(f, path, errno);
		unlink(tmp);
		return;
	}
	if (EVP_DigestFinal_ex(f->md, md, &mdlen) != 1)
		mdlen = 0;
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[2 * mdlen] = '\0';
	svm_stats.files_written++;
	if (svm_record != NULL)
		fprintf(svm_record, "FILE %" PRIu64 " %u %" PRIu64 " %" PRIu64
		    " %s\n", f->seq, f->cid, f->file_id, f->bytes, hex);
	f->want &= ~SVM_FILE_WRITE;
}

/* --- jobs --- */

static void
svm_read_pump_later(struct svm_read_conn *rc)
{
	if (!rc->abandoned)
		event_active(rc->pump_ev, EV_TIMEOUT, 0);
}

/* A clamd slot came free: any connection may have a job waiting for it. */
void
svm_read_pump_all(void)
{
	struct svm_conn *c;

	TAILQ_FOREACH(c, &svm_conns, entry)
		if (!c->closing && c->reads != NULL && c->reads->nqueue > 0)
			svm_read_pump_later(c->reads);
}

static void
svm_read_release_slot(struct svm_read_conn *rc, struct svm_file *f)
{
	if (!f->slot)
		return;
	f->slot = 0;
	rc->nslots--;
	svm_read_pump_later(rc);
}

static void
svm_read_to_dead(struct svm_file *f)
{
	f->state = SVM_FILE_DEAD;
	TAILQ_INSERT_TAIL(&svm_read_dead, f, entry);
	svm_reap_later();
}

/* clamd's outcome, once per job that started a scan. */
static void
svm_read_count_scan(struct svm_file *f)
{
	char why[SVM_SCAN_REPLY_MAX + 64];
	const char *result = "ERROR";

	switch (f->scan) {
	case SVM_SCAN_CLEAN:
		svm_stats.scan_clean++;
		result = "CLEAN";
		break;
	case SVM_SCAN_FOUND:
		svm_stats.scan_found++;
		result = "FOUND";
		break;
	case SVM_SCAN_NONE:
	case SVM_SCAN_ERROR:
		svm_stats.scan_errors++;
		break;
	}
	if (f->scan == SVM_SCAN_NONE && f->read_error != 0)
		snprintf(why, sizeof(why), "read: %s (%d) after %" PRIu64
		    " bytes", svm_read_err_name(svm_read_err_of(f->read_error)),
		    f->read_error, f->bytes);
	else
		snprintf(why, sizeof(why), "%s", f->scan_detail[0] != '\0' ?
		    f->scan_detail : "no reply");
	if (svm_record != NULL)
		fprintf(svm_record, "SCAN %" PRIu64 " %u %" PRIu64 " %" PRIu64
		    " %s %s\n", f->seq, f->cid, f->file_id, f->bytes, result,
		    why);
	/* One line per error, whatever --quiet says: someone waits on it. */
	if (f->scan != SVM_SCAN_CLEAN && f->scan != SVM_SCAN_FOUND)
		svm_warn("scan error: seq %" PRIu64 " cid %u file %" PRIu64
		    ": %s", f->seq, f->cid, f->file_id, why);
}

static void
svm_read_end(struct svm_read_conn *rc, struct svm_file *f)
{
	struct svm_conn *c = rc->conn;

	svm_read_release_slot(rc, f);
	svm_read_sink_abort(f);		/* a finished sink has no fd */
	if (f->clamd != NULL || f->scan_slot)
		svm_scan_release(f);
	if (f->scan_started)
		svm_read_count_scan(f);
	TAILQ_REMOVE(&rc->active, f, entry);
	svm_read_to_dead(f);
	svm_policy_file_done(c->policy, f);
	svm_state_done(c->resume, f->epoch, f->seq);
}

static void
svm_read_fail(struct svm_read_conn *rc, struct svm_file *f, int error)
{
	enum svm_read_err e = svm_read_err_of(error);

	f->read_error = error;
	svm_stats.file_read_errors++;
	svm_stats.file_read_errno[e]++;
	if (svm_read_may_log())
		svm_log("seq %" PRIu64 " cid %u file %" PRIu64 ": read at %"
		    PRIu64 ": %s (%d)", f->seq, f->cid, f->file_id, f->offset,
		    svm_read_err_name(e), error);
	svm_read_end(rc, f);
}

static void
svm_read_next(struct svm_read_conn *rc, struct svm_file *f)
{
	struct svm_conn *c = rc->conn;

	f->request_id = ++c->next_request_id;
	f->asked = SVM_READ_CHUNK;
	f->state = SVM_FILE_READING;
	/* A send that fails closes the connection, which abandons f. */
	svm_conn_send_read_file(c, f->request_id, f->seq, f->offset, f->asked);
}

static int
svm_read_vm_busy(const struct svm_read_conn *rc, uint32_t cid)
{
	const struct svm_file *f;
	unsigned n = 0;

	TAILQ_FOREACH(f, &rc->active, entry)
		if (f->slot && f->cid == cid && ++n >= SVM_READS_PER_VM)
			return 1;
	return 0;
}

static void
svm_read_start(struct svm_read_conn *rc, struct svm_file *f)
{
	f->slot = 1;
	rc->nslots++;
	if (f->want & SVM_FILE_WRITE)
		svm_read_sink_open(f);
	/* On failure f->scan says why; svm_read_end counts it. */
	if ((f->want & SVM_FILE_SCAN) && svm_scan_begin(f) != 0)
		f->want &= ~SVM_FILE_SCAN;
	if (f->want == 0) {
		svm_read_end(rc, f);
		return;
	}
	svm_read_next(rc, f);
}

/*
 * Start what may start, in arrival order, passing over jobs that wait for
 * a clamd slot or whose VM is at SVM_READS_PER_VM. The VMs found busy are
 * remembered for the rest of the pass, so a long queue of one busy VM
 * costs one comparison a job; a pass that finds too many stops there.
 */
static void
svm_read_pump(struct svm_read_conn *rc)
{
	uint32_t busy[SVM_READ_PUMP_BUSY];
	struct svm_file *f, *next;
	size_t nbusy = 0, i;

	for (f = TAILQ_FIRST(&rc->queue); f != NULL &&
	    rc->nslots < svm_opt.reads; f = next) {
		next = TAILQ_NEXT(f, entry);
		if ((f->want & SVM_FILE_SCAN) && !svm_scan_slot_free())
			continue;
		for (i = 0; i < nbusy; i++)
			if (busy[i] == f->cid)
				break;
		if (i < nbusy)
			continue;
		if (svm_read_vm_busy(rc, f->cid)) {
			if (nbusy == SVM_READ_PUMP_BUSY)
				return;
			busy[nbusy++] = f->cid;
			continue;
		}
		TAILQ_REMOVE(&rc->queue, f, entry);
		rc->nqueue--;
		TAILQ_INSERT_TAIL(&rc->active, f, entry);
		svm_read_start(rc, f);
		if (rc->abandoned)
			return;		/* the connection closed under us */
	}
}

static void
svm_read_pump_cb(evutil_socket_t fd, short events, void *arg)
{
	svm_read_pump(arg);
}

static void
svm_read_retry_cb(evutil_socket_t fd, short events, void *arg)
{
	struct svm_read_conn *rc = arg;
	struct svm_file *f, *next;
	struct timeval tv;
	uint64_t now = svm_now_ms(), due = 0;

	for (f = TAILQ_FIRST(&rc->active); f != NULL; f = next) {
		next = TAILQ_NEXT(f, entry);
		if (f->state != SVM_FILE_RETRY)
			continue;
		if (f->retry_ms <= now) {
			svm_read_next(rc, f);
			if (rc->abandoned)
				return;
		} else if (due == 0 || f->retry_ms < due)
			due = f->retry_ms;
	}
	if (due != 0) {
		tv.tv_sec = 0;
		tv.tv_usec = (suseconds_t)(due - now) * 1000;
		evtimer_add(rc->retry_ev, &tv);
	}
}

static void
svm_read_retry(struct svm_read_conn *rc, struct svm_file *f)
{
	struct timeval tv;

	f->retries++;
	svm_stats.file_read_retries++;
	f->state = SVM_FILE_RETRY;
	f->retry_ms = svm_now_ms() + SVM_READ_RETRY_MS;
	if (!evtimer_pending(rc->retry_ev, NULL)) {
		tv.tv_sec = 0;
		tv.tv_usec = SVM_READ_RETRY_MS * 1000;
		evtimer_add(rc->retry_ev, &tv);
	}
}

/*
 * A delivery whose file is wanted: queued, or skipped (-1, counted) when
 * the queue or the resume point's open set is full.
 */
int
svm_read_submit(struct svm_conn *c, const Mux__Delivery *d, unsigned want,
    int verdict, int path_deny)
{
	struct svm_read_conn *rc = c->reads;
	struct svm_file *f;

	if (rc->nqueue >= SVM_READ_QUEUE_MAX ||
	    (f = calloc(1, sizeof(*f))) == NULL) {
		svm_stats.file_jobs_skipped++;
		return -1;
	}
	if (svm_state_open(c->resume, c->track.epoch, d->seq, c->id) != 0) {
		free(f);
		svm_stats.file_jobs_skipped++;
		return -1;
	}
	f->conn = c;
	f->want = want;
	f->seq = d->seq;
	f->epoch = c->track.epoch;
	f->cid = d->vm != NULL ? d->vm->cid : 0;
	f->file_id = d->event->file->file_id;
	f->verdict = verdict;
	f->path_deny = path_deny;
	f->is_file = 1;
	f->fd = -1;
	TAILQ_INSERT_TAIL(&rc->queue, f, entry);
	rc->nqueue++;
	svm_stats.file_jobs++;
	svm_read_pump_later(rc);
	return 0;
}

void
svm_read_file_data(struct svm_read_conn *rc, const Mux__FileData *fd)
{
	struct svm_file *f;
	size_t len = fd->data.len;
	int pause = 0;

	TAILQ_FOREACH(f, &rc->active, entry)
		if (f->state == SVM_FILE_READING &&
		    f->request_id == fd->request_id)
			break;
	if (f == NULL) {
		svm_stats.file_data_unknown++;
		return;
	}
	f->request_id = 0;
	if (fd->error != 0) {
		if (fd->error == EAGAIN && !f->cancel &&
		    f->retries < SVM_READ_RETRIES) {
			svm_read_retry(rc, f);
			return;
		}
		svm_read_fail(rc, f, fd->error);
		return;
	}
	if (fd->offset != f->offset || len > f->asked ||
	    (len == 0 && !fd->eof) || f->bytes + len > SVM_FILE_MAX_BYTES) {
		svm_read_fail(rc, f, -1);
		return;
	}
	svm_stats.file_read_bytes += len;
	f->bytes += len;
	f->offset += len;
	if (f->cancel) {
		svm_read_end(rc, f);
		return;
	}
	if (f->want & SVM_FILE_WRITE)
		svm_read_sink_write(f, fd->data.data, len);
	if (f->want & SVM_FILE_SCAN)
		pause = svm_scan_chunk(f, fd->data.data, len);
	if (f->want == 0) {
		svm_read_end(rc, f);
		return;
	}
	if (fd->eof) {
		f->read_done = 1;
		svm_stats.files_read++;
		svm_read_release_slot(rc, f);
		if (f->want & SVM_FILE_WRITE)
			svm_read_sink_finish(f);
		if (f->want & SVM_FILE_SCAN) {
			svm_scan_end_stream(f);
			f->state = SVM_FILE_SCANNING;
			return;
		}
		svm_read_end(rc, f);
		return;
	}
	if (pause) {
		svm_stats.file_read_pauses++;
		f->state = SVM_FILE_PAUSED;
		return;
	}
	svm_read_next(rc, f);
}

/* clamd took enough of a paused job's stream: ask for the next chunk. */
void
svm_read_scan_writable(struct svm_file *f)
{
	if (f->state == SVM_FILE_PAUSED)
		svm_read_next(f->conn->reads, f);
}

/* clamd answered (f->scan says how), possibly before the stream ended. */
void
svm_read_scan_done(struct svm_file *f)
{
	struct svm_read_conn *rc = f->conn->reads;

	f->want &= ~SVM_FILE_SCAN;
	switch (f->state) {
	case SVM_FILE_SCANNING:
		svm_read_end(rc, f);
		return;
	case SVM_FILE_READING:
		/* The answer in flight still counts against the MUX's limit. */
		if (f->want == 0)
			f->cancel = 1;
		return;
	case SVM_FILE_RETRY:
	case SVM_FILE_PAUSED:
		if (f->want == 0)
			svm_read_end(rc, f);
		else if (f->state == SVM_FILE_PAUSED)
			svm_read_next(rc, f);
		return;
	case SVM_FILE_QUEUED:
	case SVM_FILE_DEAD:
		return;
	}
}

struct svm_read_conn *
svm_read_conn_new(struct svm_conn *c)
{
	struct svm_read_conn *rc;

	if ((rc = calloc(1, sizeof(*rc))) == NULL)
		return NULL;
	rc->conn = c;
	TAILQ_INIT(&rc->queue);
	TAILQ_INIT(&rc->active);
	rc->pump_ev = event_new(svm_base, -1, 0, svm_read_pump_cb, rc);
	rc->retry_ev = evtimer_new(svm_base, svm_read_retry_cb, rc);
	if (rc->pump_ev == NULL || rc->retry_ev == NULL) {
		svm_read_conn_free(rc);
		return NULL;
	}
	return rc;
}

static void
svm_read_abandon_list(struct svm_read_conn *rc, struct svm_files *list)
{
	struct svm_file *f;

	while ((f = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, f, entry);
		svm_stats.file_jobs_abandoned++;
		if (f->scan_started)
			svm_stats.scans_abandoned++;
		if (f->slot) {
			f->slot = 0;
			rc->nslots--;
		}
		svm_read_sink_abort(f);
		if (f->clamd != NULL || f->scan_slot)
			svm_scan_release(f);
		svm_read_to_dead(f);
	}
}

/*
 * The connection closes: nothing of it runs any more. Its seqs stay open
 * (abandoned) in the resume point, so a redial asks for them again.
 */
void
svm_read_conn_abandon(struct svm_read_conn *rc)
{
	if (rc == NULL || rc->abandoned)
		return;
	rc->abandoned = 1;
	svm_read_abandon_list(rc, &rc->queue);
	rc->nqueue = 0;
	/* Released clamd slots wake the other connections' pumps. */
	svm_read_abandon_list(rc, &rc->active);
	if (rc->pump_ev != NULL)
		event_del(rc->pump_ev);
	if (rc->retry_ev != NULL)
		event_del(rc->retry_ev);
	svm_state_abandon(rc->conn->resume, rc->conn->id);
}

void
svm_read_conn_free(struct svm_read_conn *rc)
{
	if (rc == NULL)
		return;
	svm_read_conn_abandon(rc);
	if (rc->pump_ev != NULL)
		event_free(rc->pump_ev);
	if (rc->retry_ev != NULL)
		event_free(rc->retry_ev);
	free(rc);
}

/* From the loop: jobs that ended, and the clamd connections they held. */
void
svm_read_reap(void)
{
	struct svm_file *f;

	while ((f = TAILQ_FIRST(&svm_read_dead)) != NULL) {
		TAILQ_REMOVE(&svm_read_dead, f, entry);
		if (f->clamd != NULL)
			bufferevent_free(f->clamd);
		EVP_MD_CTX_free(f->md);
		if (f->fd >= 0)
			close(f->fd);
		free(f);
	}
}
