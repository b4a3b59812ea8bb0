/*
 * mbox.c: wake-ups and control-plane mailboxes between threads.
 *
 * A wake is a non-blocking pipe whose read end is an event in the target
 * base. The receiver arms it before looking for work; a sender writes a
 * byte only when it finds it armed, so a busy receiver costs senders one
 * atomic exchange and no system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "mux.h"

static void
wake_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct wake *w = arg;
	char buf[64];

	(void)ev;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	/* Arm before looking, so a post after our look wakes us again. */
	atomic_store(&w->armed, 1);
	w->cb(w->arg);
}

int
wake_init(struct wake *w, struct event_base *base, void (*cb)(void *), void *arg)
{
	memset(w, 0, sizeof(*w));
	if (pipe2(w->fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	atomic_init(&w->armed, 1);
	w->cb = cb;
	w->arg = arg;
	w->ev = event_new(base, w->fds[0], EV_READ | EV_PERSIST, wake_cb, w);
	if (w->ev == NULL || event_add(w->ev, NULL) == -1) {
		if (w->ev != NULL)
			event_free(w->ev);
		close(w->fds[0]);
		close(w->fds[1]);
		memset(w, 0, sizeof(*w));
		return -1;
	}
	return 0;
}

void
wake_signal(struct wake *w)
{
	char c = 1;

	if (atomic_exchange(&w->armed, 0) == 1) {
		/* EAGAIN: the pipe is full, so a wake-up is pending anyway. */
		while (write(w->fds[1], &c, 1) == -1 && errno == EINTR)
			;
	}
}

void
wake_free(struct wake *w)
{
	/* ev exists only when the pipe does (wake_init). */
	if (w->ev != NULL) {
		event_free(w->ev);
		close(w->fds[0]);
		close(w->fds[1]);
	}
	memset(w, 0, sizeof(*w));
}

int
mbox_init(struct mbox *mb, struct event_base *base, void (*cb)(void *), void *arg)
{
	pthread_mutex_init(&mb->lock, NULL);
	TAILQ_INIT(&mb->list);
	return wake_init(&mb->wake, base, cb, arg);
}

struct mbox_msg *
mbox_msg_new(enum mbox_type type, size_t datalen)
{
	struct mbox_msg *m;

	/* Only the header is cleared: a verdict batch's data is 70 KiB that
	 * its sender fills as it goes. */
	m = malloc(sizeof(*m) + datalen);
	if (m == NULL)
		fatal("mbox_msg_new");
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->len = datalen;
	return m;
}

void
mbox_post(struct mbox *mb, struct mbox_msg *m)
{
	pthread_mutex_lock(&mb->lock);
	TAILQ_INSERT_TAIL(&mb->list, m, entry);
	pthread_mutex_unlock(&mb->lock);
	wake_signal(&mb->wake);
}

void
mbox_take(struct mbox *mb, struct mbox_list *out)
{
	TAILQ_INIT(out);
	pthread_mutex_lock(&mb->lock);
	TAILQ_CONCAT(out, &mb->list, entry);
	pthread_mutex_unlock(&mb->lock);
}

void
mbox_free(struct mbox *mb)
{
	struct mbox_msg *m;

	while ((m = TAILQ_FIRST(&mb->list)) != NULL) {
		TAILQ_REMOVE(&mb->list, m, entry);
		free(m);
	}
	wake_free(&mb->wake);
	pthread_mutex_destroy(&mb->lock);
}
