/*
 * snap.c: what the worker threads publish for `muxctl` and /metrics.
 * Workers replace whole arrays under the lock; the control thread copies
 * what it needs under the same lock. Never on the per-event path.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mux.h"

void
snap_init(struct snap *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
}

void
snap_set_agents(struct snap *s, struct snap_agent *a, size_t n)
{
	struct snap_agent *old;

	pthread_mutex_lock(&s->lock);
	old = s->agents;
	s->agents = a;
	s->nagents = n;
	pthread_mutex_unlock(&s->lock);
	free(old);
}

void
snap_set_svms(struct snap *s, struct snap_svm *v, size_t n)
{
	struct snap_svm *old;

	pthread_mutex_lock(&s->lock);
	old = s->svms;
	s->svms = v;
	s->nsvms = n;
	pthread_mutex_unlock(&s->lock);
	free(old);
}

/* Keeps the last ALARMS_MAX alarms; `muxctl status` shows them. */
void
snap_alarm(struct snap *s, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	pthread_mutex_lock(&s->lock);
	if (s->nalarms == ALARMS_MAX) {
		for (i = 1; i < ALARMS_MAX; i++) {
			memcpy(s->alarms[i - 1], s->alarms[i], sizeof(s->alarms[i]));
			s->alarm_ns[i - 1] = s->alarm_ns[i];
		}
		s->nalarms--;
	}
	va_start(ap, fmt);
	vsnprintf(s->alarms[s->nalarms], sizeof(s->alarms[0]), fmt, ap);
	va_end(ap);
	s->alarm_ns[s->nalarms++] = now_ns();
	pthread_mutex_unlock(&s->lock);
}
