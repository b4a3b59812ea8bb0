/*
 * svm-scan.c: a file's content through ClamAV's clamd (--policy
 * scan:clamd:SOCKET), one Unix stream connection per scan.
 *
 *   -> "zINSTREAM\0"
 *   -> { uint32 length, big-endian; length bytes }   per chunk read
 *   -> { 0, 0, 0, 0 }                                 end of stream
 *   <- "stream: OK\0" | "stream: <Signature> FOUND\0" | "<...> ERROR\0"
 *
 * The 'z' form has every reply end in a NUL. clamd may answer before the
 * stream ends (a size limit: "INSTREAM size limit exceeded. ERROR"); the
 * read engine then stops feeding it. Anything but OK or FOUND, a reply
 * longer than SVM_SCAN_REPLY_MAX, a close without a reply, a socket error,
 * or clamd idle for SVM_SCAN_TIMEOUT_S (not taking our bytes while we
 * stream, or not answering after the end of the stream) is a scan error.
 * A slow guest read is not clamd's fault and is not timed here.
 *
 * Non-blocking throughout: the connect is to a local socket and finishes
 * at once or fails (a full listen backlog, EAGAIN, fails the scan rather
 * than blocking); writes are buffered in the bufferevent, and the read
 * engine pauses a file when SVM_SCAN_OUT_MAX bytes wait (svm_scan_chunk
 * returns 1) and resumes it when half of that is gone (the write
 * watermark), so memory per scan stays bounded.
 *
 * At most svm_opt.scans connections at once, process-wide; a job waits
 * in its connection's read queue for a slot (svm-read.c). A released
 * connection is disabled at once and freed with its job, from the loop.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "svm.h"

static const char svm_scan_command[] = "zINSTREAM";	/* sent with its NUL */

static unsigned	svm_scan_running;	/* clamd slots held */

int
svm_scan_slot_free(void)
{
	return svm_scan_running < svm_opt.scans;
}

/* The connection and the slot go; the job stays (svm-read.c ends it). */
void
svm_scan_release(struct svm_file *f)
{
	if (f->clamd != NULL) {
		bufferevent_setcb(f->clamd, NULL, NULL, NULL, NULL);
		bufferevent_disable(f->clamd, EV_READ | EV_WRITE);
	}
	if (f->scan_slot) {
		f->scan_slot = 0;
		svm_scan_running--;
		svm_read_pump_all();
	}
}

static void
svm_scan_result(struct svm_file *f, enum svm_scan_result res,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
svm_scan_result(struct svm_file *f, enum svm_scan_result res,
    const char *fmt, ...)
{
	va_list ap;

	f->scan = res;
	va_start(ap, fmt);
	vsnprintf(f->scan_detail, sizeof(f->scan_detail), fmt, ap);
	va_end(ap);
	svm_scan_release(f);
	svm_read_scan_done(f);
}

/* "stream: OK", "stream: SIG FOUND", or an error. */
static void
svm_scan_reply(struct svm_file *f, char *line)
{
	static const char prefix[] = "stream: ", found[] = " FOUND";
	size_t n = strlen(line), pl = sizeof(prefix) - 1,
	    fl = sizeof(found) - 1;

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (strcmp(line, "stream: OK") == 0) {
		svm_scan_result(f, SVM_SCAN_CLEAN, "OK");
		return;
	}
	if (n > pl + fl && strncmp(line, prefix, pl) == 0 &&
	    strcmp(line + n - fl, found) == 0) {
		line[n - fl] = '\0';
		svm_scan_result(f, SVM_SCAN_FOUND, "%s", line + pl);
		return;
	}
	svm_scan_result(f, SVM_SCAN_ERROR, "clamd: %s", line);
}

/* 1 when a whole reply line was there (and handled). */
static int
svm_scan_try_reply(struct svm_file *f, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[SVM_SCAN_REPLY_MAX];
	ev_ssize_t i, n;

	if ((n = evbuffer_copyout(in, line, sizeof(line) - 1)) <= 0)
		return 0;
	for (i = 0; i < n; i++)
		if (line[i] == '\0' || line[i] == '\n')
			break;
	if (i == n) {
		if ((size_t)n < sizeof(line) - 1)
			return 0;	/* wait for the rest */
		svm_scan_result(f, SVM_SCAN_ERROR,
		    "clamd: reply longer than %zu bytes", sizeof(line) - 1);
		return 1;
	}
	line[i] = '\0';
	svm_scan_reply(f, line);
	return 1;
}

static void
svm_scan_read_cb(struct bufferevent *bev, void *arg)
{
	svm_scan_try_reply(arg, bev);
}

static void
svm_scan_write_cb(struct bufferevent *bev, void *arg)
{
	svm_read_scan_writable(arg);
}

static void
svm_scan_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct svm_file *f = arg;
	int error = EVUTIL_SOCKET_ERROR();

	/*
	 * clamd may answer and close before it read all we wrote: a write
	 * error (EPIPE) can come first while its reply waits in the socket.
	 */
	if ((what & BEV_EVENT_ERROR) && (what & BEV_EVENT_WRITING))
		evbuffer_read(bufferevent_get_input(bev),
		    bufferevent_getfd(bev), SVM_SCAN_REPLY_MAX);
	if (svm_scan_try_reply(f, bev))
		return;
	if (what & BEV_EVENT_EOF)
		svm_scan_result(f, SVM_SCAN_ERROR,
		    "clamd closed the connection without a reply");
	else if (what & BEV_EVENT_TIMEOUT)
		svm_scan_result(f, SVM_SCAN_ERROR, "clamd %s for %d s",
		    (what & BEV_EVENT_WRITING) ? "not reading" : "silent",
		    SVM_SCAN_TIMEOUT_S);
	else if (what & BEV_EVENT_ERROR)
		svm_scan_result(f, SVM_SCAN_ERROR, "clamd: %s",
		    evutil_socket_error_to_string(error));
}

/*
 * Take a slot and connect. -1 (f->scan says why, slot released) when
 * clamd cannot be reached; nothing is called back in that case.
 */
int
svm_scan_begin(struct svm_file *f)
{
	const char *path = svm_opt.policy.clamd_path;
	struct sockaddr_un sun;
	struct timeval tv;
	int fd;

	svm_stats.scans++;
	f->scan_started = 1;
	f->scan_slot = 1;
	svm_scan_running++;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	/* The length was checked at start-up. */
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1 || connect(fd, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1) {
		f->scan = SVM_SCAN_ERROR;
		snprintf(f->scan_detail, sizeof(f->scan_detail),
		    "cannot connect to clamd at %s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		svm_scan_release(f);
		return -1;
	}
	if ((f->clamd = bufferevent_socket_new(svm_base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		f->scan = SVM_SCAN_ERROR;
		snprintf(f->scan_detail, sizeof(f->scan_detail),
		    "out of memory");
		svm_scan_release(f);
		return -1;
	}
	bufferevent_setcb(f->clamd, svm_scan_read_cb, svm_scan_write_cb,
	    svm_scan_event_cb, f);
	/* The write callback says "take the next chunk": at half the cap. */
	bufferevent_setwatermark(f->clamd, EV_WRITE, SVM_SCAN_OUT_MAX / 2, 0);
	/* clamd not taking our bytes; its reply is timed at end of stream. */
	tv.tv_sec = SVM_SCAN_TIMEOUT_S;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(f->clamd, NULL, &tv);
	bufferevent_enable(f->clamd, EV_READ | EV_WRITE);
	bufferevent_write(f->clamd, svm_scan_command, sizeof(svm_scan_command));
	return 0;
}

static void
svm_scan_put(struct svm_file *f, const void *p, size_t len)
{
	uint8_t hdr[4];

	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
	bufferevent_write(f->clamd, hdr, sizeof(hdr));
	if (len > 0)
		bufferevent_write(f->clamd, p, len);
}

/* One chunk; 1 when clamd is behind and the read should pause. */
int
svm_scan_chunk(struct svm_file *f, const void *p, size_t len)
{
	if (f->clamd == NULL || !f->scan_slot || len == 0)
		return 0;
	svm_scan_put(f, p, len);
	return evbuffer_get_length(bufferevent_get_output(f->clamd)) >=
	    SVM_SCAN_OUT_MAX;
}

void
svm_scan_end_stream(struct svm_file *f)
{
	struct timeval tv;

	if (f->clamd == NULL || !f->scan_slot)
		return;
	svm_scan_put(f, NULL, 0);
	/* Only now is clamd's silence a fault: it waited for our bytes. */
	tv.tv_sec = SVM_SCAN_TIMEOUT_S;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(f->clamd, &tv, &tv);
}
