/*
 * svm-state.c: resume points and the --state file.
 *
 * A resume point is the epoch of the last Registered and the highest seq
 * "last" such that every seq up to it is finished: processed, or given up
 * by a Gap (so a resume does not ask for it again). Every Register
 * carries it: resume_epoch = epoch, resume_from = last + 1; 0/0 before the
 * first Registered ever.
 *
 * Most deliveries are finished as soon as they are handled. A file job
 * (svm-read.c: --read-files, the scan policy) is not: its seq stays in the
 * "open" set, owned by its connection, until the job ends, and "last"
 * stops below the lowest open seq; "hi" is the highest seq handled.
 *
 *      finished          open   finished  open(abandoned)  finished
 *   ... ----------| last | 17 | 18 19 20 |      21       | 22 = hi
 *
 * Acks are not held back (they are about delivery, and holding them would
 * stall the window behind one slow read). When a connection closes, its
 * open seqs are marked abandoned; the next Register resumes from last + 1,
 * the MUX replays from there what it still holds, and then:
 *   - a seq <= hi that is not open was finished: a duplicate (acked only);
 *   - an abandoned seq is handled again (counted in redelivered);
 *   - an abandoned seq the MUX skips (a Gap over it, or a later delivery)
 *     is dropped: it will never come.
 * The open set is memory only: after a restart with --state every seq
 * above last is handled again. It is bounded (SVM_OPEN_MAX per MUX); a
 * file job that does not fit is skipped and counted.
 *
 * One point per MUX, keyed by MuxHello.host_id: an SVM may serve several
 * hosts at once, each with its own epoch and seq space, and a redial from
 * one must not resume from another's numbers. With a single MUX this is
 * just "the" pair. The table is small and fixed; a MUX beyond it is served
 * without resume (live starts, no duplicate check).
 *
 * The file holds one line per point, "EPOCH LAST HOST_ID\n" (HOST_ID is
 * the rest of the line, possibly empty, so a bare "EPOCH LAST" pair is
 * read as the point of a MUX with an empty host_id). It is written to
 * FILE.tmp and renamed over FILE, so a process killed at any moment leaves
 * the old or the new content, never half of it. No fsync: it has to
 * survive a killed process, which is what tests restart, not a lost host.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svm.h"

#define SVM_RESUME_MAX	64	/* MUX hosts remembered */
#define SVM_STATE_LINE	(SVM_ID_MAX + 64)

static struct svm_resume	 svm_resumes[SVM_RESUME_MAX];
static const struct svm_resume	*svm_resume_latest;
static int			 svm_state_dirty;	/* file is behind */

/* Host ids end up in a line-based file: no control characters. */
static int
svm_state_host_ok(const char *host_id)
{
	const unsigned char *p;

	if (strlen(host_id) >= SVM_ID_MAX)
		return 0;
	for (p = (const unsigned char *)host_id; *p != '\0'; p++)
		if (iscntrl(*p))
			return 0;
	return 1;
}

struct svm_resume *
svm_state_find(const char *host_id)
{
	struct svm_resume *r, *free_slot = NULL;
	size_t i;

	if (!svm_state_host_ok(host_id))
		return NULL;
	for (i = 0; i < SVM_RESUME_MAX; i++) {
		r = &svm_resumes[i];
		if (r->used && strcmp(r->host_id, host_id) == 0)
			return r;
		if (!r->used && free_slot == NULL)
			free_slot = r;
	}
	if (free_slot != NULL) {
		free_slot->used = 1;
		strcpy(free_slot->host_id, host_id);
		free_slot->epoch = free_slot->last = free_slot->hi = 0;
		free_slot->nopen = 0;
	}
	return free_slot;
}

void
svm_state_load(void)
{
	const char *path = svm_opt.state_path;
	char line[SVM_STATE_LINE], *host, *nl;
	struct svm_resume *r;
	uint64_t epoch, last;
	unsigned lineno = 0;
	int used;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return;		/* first run: start fresh */
		svm_fatalx(1, "%s: %s", path, strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if ((nl = strchr(line, '\n')) == NULL && !feof(f))
			svm_fatalx(1, "%s:%u: line too long", path, lineno);
		if (nl != NULL)
			*nl = '\0';
		used = 0;
		if (sscanf(line, "%" SCNu64 " %" SCNu64 "%n", &epoch, &last,
		    &used) != 2 || (line[used] != '\0' && line[used] != ' '))
			svm_fatalx(1, "%s:%u: want \"EPOCH LAST_SEQ [HOST_ID]\"",
			    path, lineno);
		host = line + used + (line[used] == ' ');
		if ((r = svm_state_find(host)) == NULL)
			svm_fatalx(1, "%s:%u: bad or one too many host ids",
			    path, lineno);
		r->epoch = epoch;
		r->last = r->hi = epoch != 0 ? last : 0;
		r->nopen = 0;
		svm_resume_latest = r;
		svm_log("state %s: host_id \"%s\": resume epoch=%" PRIu64
		    " from=%" PRIu64, path, r->host_id, r->epoch,
		    svm_state_resume_from(r));
	}
	fclose(f);
}

/* Saves when something changed; a failure is logged, memory still serves. */
void
svm_state_flush(void)
{
	const char *path = svm_opt.state_path;
	char tmp[PATH_MAX];
	const struct svm_resume *r;
	size_t i;
	FILE *f;

	if (path == NULL || !svm_state_dirty)
		return;
	/*
	 * The record file is never behind the resume point: a process killed
	 * right after this save has on disk every delivery the point covers.
	 */
	if (svm_record != NULL)
		fflush(svm_record);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		svm_fatalx(1, "%s: path too long", path);
	if ((f = fopen(tmp, "w")) == NULL) {
		svm_warn("%s: %s", tmp, strerror(errno));
		return;
	}
	for (i = 0; i < SVM_RESUME_MAX; i++) {
		r = &svm_resumes[i];
		if (r->used && r->epoch != 0)
			fprintf(f, "%" PRIu64 " %" PRIu64 " %s\n", r->epoch,
			    r->last, r->host_id);
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		svm_warn("%s: %s", path, strerror(errno));
		return;
	}
	svm_state_dirty = 0;
}

/* A Registered in another epoch moves the point to its live start. */
void
svm_state_registered(struct svm_resume *r, uint64_t epoch, uint64_t next_seq)
{
	if (r == NULL)
		return;
	svm_resume_latest = r;
	if (epoch == r->epoch)
		return;
	r->epoch = epoch;
	r->last = r->hi = next_seq != 0 ? next_seq - 1 : 0;
	r->nopen = 0;		/* numbers of the old epoch */
	svm_state_dirty = 1;
}

/* Index of seq in the open set, or of where it would go. */
static size_t
svm_state_open_index(const struct svm_resume *r, uint64_t seq)
{
	size_t lo = 0, hi = r->nopen, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (r->open[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* last only grows: below the lowest open seq, else up to hi. */
static void
svm_state_relast(struct svm_resume *r)
{
	uint64_t last = r->nopen > 0 ? r->open[0].seq - 1 : r->hi;

	if (last > r->last) {
		r->last = last;
		svm_state_dirty = 1;
	}
}

/*
 * A delivery (or the end of a Gap) at seq: abandoned seqs up to it will
 * not come again on this connection, the MUX delivers in order.
 */
void
svm_state_processed(struct svm_resume *r, uint64_t epoch, uint64_t seq)
{
	size_t i, j;

	if (r == NULL || epoch != r->epoch)
		return;
	for (i = j = 0; i < r->nopen; i++)
		if (r->open[i].conn_id != 0 || r->open[i].seq > seq)
			r->open[j++] = r->open[i];
	r->nopen = j;
	if (seq > r->hi)
		r->hi = seq;
	svm_state_relast(r);
}

/* A file job starts on seq (or starts again after a reconnect). */
int
svm_state_open(struct svm_resume *r, uint64_t epoch, uint64_t seq,
    uint64_t conn_id)
{
	size_t i;

	if (r == NULL || epoch != r->epoch)
		return 0;	/* no resume point: nothing to hold back */
	i = svm_state_open_index(r, seq);
	if (i < r->nopen && r->open[i].seq == seq) {
		r->open[i].conn_id = conn_id;
		return 0;
	}
	if (r->nopen == SVM_OPEN_MAX)
		return -1;
	if (r->open == NULL &&
	    (r->open = calloc(SVM_OPEN_MAX, sizeof(*r->open))) == NULL)
		return -1;
	memmove(&r->open[i + 1], &r->open[i],
	    (r->nopen - i) * sizeof(*r->open));
	r->open[i].seq = seq;
	r->open[i].conn_id = conn_id;
	r->nopen++;
	return 0;
}

int
svm_state_is_open(const struct svm_resume *r, uint64_t epoch, uint64_t seq)
{
	size_t i;

	if (r == NULL || epoch != r->epoch || r->nopen == 0)
		return 0;
	i = svm_state_open_index(r, seq);
	return i < r->nopen && r->open[i].seq == seq;
}

/* The job on seq ended (whatever its outcome): seq is finished. */
void
svm_state_done(struct svm_resume *r, uint64_t epoch, uint64_t seq)
{
	size_t i;

	if (r == NULL || epoch != r->epoch)
		return;
	i = svm_state_open_index(r, seq);
	if (i == r->nopen || r->open[i].seq != seq)
		return;
	memmove(&r->open[i], &r->open[i + 1],
	    (r->nopen - i - 1) * sizeof(*r->open));
	r->nopen--;
	svm_state_relast(r);
}

/* A connection closed: its open seqs wait for a redelivery. */
void
svm_state_abandon(struct svm_resume *r, uint64_t conn_id)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nopen; i++)
		if (r->open[i].conn_id == conn_id)
			r->open[i].conn_id = 0;
}

void
svm_state_free(void)
{
	size_t i;

	for (i = 0; i < SVM_RESUME_MAX; i++) {
		free(svm_resumes[i].open);
		svm_resumes[i].open = NULL;
		svm_resumes[i].nopen = 0;
	}
}

uint64_t
svm_state_resume_epoch(const struct svm_resume *r)
{
	return r != NULL ? r->epoch : 0;
}

uint64_t
svm_state_resume_from(const struct svm_resume *r)
{
	return r != NULL && r->epoch != 0 ? r->last + 1 : 0;
}

/* Finished before, in this epoch (a replay across a reconnect). */
int
svm_state_seen(const struct svm_resume *r, uint64_t epoch, uint64_t seq)
{
	return r != NULL && r->epoch == epoch && (seq <= r->last ||
	    (seq <= r->hi && !svm_state_is_open(r, epoch, seq)));
}

/* For the report: the point of the MUX that registered last. */
const struct svm_resume *
svm_state_latest(void)
{
	return svm_resume_latest;
}

size_t
svm_state_count(void)
{
	size_t i, n = 0;

	for (i = 0; i < SVM_RESUME_MAX; i++)
		if (svm_resumes[i].used)
			n++;
	return n;
}
