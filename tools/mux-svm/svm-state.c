/*
 * svm-state.c: the resume point and its --state file.
 *
 * The resume point is the epoch of the last Registered and the highest seq
 * processed in it (or given up by a Gap, so a resume does not ask for it
 * again). Every Register carries it: resume_epoch = epoch, resume_from =
 * last + 1; 0/0 before the first Registered ever.
 *
 * The file is one line, "EPOCH LAST\n", written to FILE.tmp and renamed
 * over FILE, so a process killed at any moment leaves the old or the new
 * pair, never half of one. No fsync: it survives a killed process, which is
 * what the tests restart, not a lost machine.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "svm.h"

void
svm_state_load(const char *path)
{
	FILE *f;
	uint64_t epoch, last;
	char extra;

	if ((f = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return;		/* first run: start fresh */
		svm_fatalx(1, "%s: %s", path, strerror(errno));
	}
	if (fscanf(f, "%" SCNu64 " %" SCNu64 " %c", &epoch, &last,
	    &extra) != 2)
		svm_fatalx(1, "%s: want one line \"EPOCH LAST_SEQ\"", path);
	fclose(f);
	svm_resume.epoch = epoch;
	svm_resume.last = epoch != 0 ? last : 0;
	svm_resume.dirty = 0;
	svm_log("state %s: resume epoch=%" PRIu64 " from=%" PRIu64, path,
	    svm_resume.epoch, svm_state_resume_from());
}

void
svm_state_save(const char *path)
{
	char tmp[PATH_MAX], line[64];
	int fd, n;

	/*
	 * The record file is never behind the resume point: a process killed
	 * right after this save has on disk every delivery the point covers.
	 */
	if (svm_record != NULL)
		fflush(svm_record);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		svm_fatalx(1, "%s: path too long", path);
	n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 "\n",
	    svm_resume.epoch, svm_resume.last);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1 || write(fd, line, (size_t)n) != n) {
		/* Keep running: the in-memory point still serves redials. */
		svm_warn("%s: %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		return;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		svm_warn("%s: %s", path, strerror(errno));
		return;
	}
	svm_resume.dirty = 0;
}

/* A Registered in another epoch moves the point to its live start. */
void
svm_state_registered(uint64_t epoch, uint64_t next_seq)
{
	if (epoch == svm_resume.epoch)
		return;
	svm_resume.epoch = epoch;
	svm_resume.last = next_seq != 0 ? next_seq - 1 : 0;
	svm_resume.dirty = 1;
}

/* Only the epoch of the resume point moves it (another MUX may dial). */
void
svm_state_processed(uint64_t epoch, uint64_t seq)
{
	if (epoch != svm_resume.epoch || seq <= svm_resume.last)
		return;
	svm_resume.last = seq;
	svm_resume.dirty = 1;
}

uint64_t
svm_state_resume_from(void)
{
	return svm_resume.epoch != 0 ? svm_resume.last + 1 : 0;
}
