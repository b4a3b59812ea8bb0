/*
 * svm-state.c: resume points and the --state file.
 *
 * A resume point is the epoch of the last Registered and the highest seq
 * processed in it (or given up by a Gap, so a resume does not ask for it
 * again). Every Register carries it: resume_epoch = epoch, resume_from =
 * last + 1; 0/0 before the first Registered ever.
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
		free_slot->epoch = free_slot->last = 0;
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
		r->last = epoch != 0 ? last : 0;
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
	r->last = next_seq != 0 ? next_seq - 1 : 0;
	svm_state_dirty = 1;
}

void
svm_state_processed(struct svm_resume *r, uint64_t epoch, uint64_t seq)
{
	if (r == NULL || epoch != r->epoch || seq <= r->last)
		return;
	r->last = seq;
	svm_state_dirty = 1;
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

/* Processed before, in this epoch (a replay across a reconnect). */
int
svm_state_seen(const struct svm_resume *r, uint64_t epoch, uint64_t seq)
{
	return r != NULL && r->epoch == epoch && seq <= r->last;
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
