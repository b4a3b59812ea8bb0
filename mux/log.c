/*
 * log.c: logging for muxd. The level is an atomic so that `muxctl log level`
 * can change it from the control thread while workers log.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static int		log_foreground = 1;
static atomic_int	log_level = LOG_LEVEL_INFO;

void
log_init(int foreground, enum log_level lvl)
{
	log_foreground = foreground;
	atomic_store(&log_level, (int)lvl);
	if (!foreground)
		openlog("muxd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(enum log_level lvl)
{
	atomic_store(&log_level, (int)lvl);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level);
}

int
log_enabled(enum log_level lvl)
{
	return lvl != LOG_LEVEL_OFF && (int)lvl <= atomic_load(&log_level);
}

static void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_ERR, LOG_WARNING, LOG_INFO,
	    LOG_DEBUG, LOG_DEBUG };
	char line[1024];
	struct timespec ts;
	struct tm tm;

	vsnprintf(line, sizeof(line), fmt, ap);
	if (!log_foreground) {
		syslog(prio[lvl], "%s", line);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* One fprintf per line: stdio's lock keeps lines whole across threads. */
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ muxd[%s]: %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
	    config_log_level_name(lvl), line);
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	char buf[900];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOG_LEVEL_ERROR, "fatal: %s: %s", buf, strerror(saved));
	if (!log_foreground)
		fprintf(stderr, "muxd: %s: %s\n", buf, strerror(saved));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	char buf[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOG_LEVEL_ERROR, "fatal: %s", buf);
	if (!log_foreground)
		fprintf(stderr, "muxd: %s\n", buf);
	exit(1);
}
