/*
 * log.h: one line per message, to stderr (-d) or syslog.
 *
 * Safe from any thread. Lines about a peer name the peer first
 * ("agent cid=7 session=3: ..."). fatal/fatalx are for start-up and broken
 * invariants only; peers never cause them.
 */
#ifndef MUX_LOG_H
#define MUX_LOG_H

#include <stdarg.h>

#include "config.h"

/* log.c */
void	log_init(int foreground, enum log_level);
void	log_set_level(enum log_level);
enum log_level log_get_level(void);
int	log_enabled(enum log_level);
void	log_msg(enum log_level, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
#define log_error(...)	log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warnx(...)	log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_trace(...)	log_msg(LOG_LEVEL_TRACE, __VA_ARGS__)
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
