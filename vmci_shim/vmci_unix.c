/*
 * vmci_unix.c: the emulated transport (protocol section 7) on a Unix stream
 * socket, for tests and demos on hosts without vsock.
 *
 * The client writes "CID <n>\n", the stamp a hypervisor would give, and its
 * frames follow at once in the same stream. An accepted connection is
 * "pending" until that line is read; pending connections are bounded in
 * number (VMCI_PENDING_MAX) and each in time (timeout_ms from accept), so a
 * crowd of silent clients costs at most a fixed set of fds for two seconds.
 * The line is consumed exactly: every byte after its '\n' belongs to the
 * caller's framing, so none is read here.
 *
 * Callbacks into the caller are always the last thing a function of ours
 * does, with our own state already updated or freed, because the caller may
 * free the listener from inside them.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "vmci_backend.h"

#define VMCI_UNIX_SUN_PATH	sizeof(((struct sockaddr_un *)0)->sun_path)

struct vmci_unix_listener;

struct vmci_unix_pending {
	TAILQ_ENTRY(vmci_unix_pending)	 entry;
	struct vmci_unix_listener	*l;
	int				 fd;
	struct event			*ev;
	uint64_t			 deadline_ms;
	size_t				 len;
	char				 line[VMCI_CID_LINE_MAX];
	char				 peer[VMCI_PEER_MAX];
};
TAILQ_HEAD(vmci_unix_pendings, vmci_unix_pending);

struct vmci_unix_listener {
	struct event_base	*base;
	int			 fd;
	char			 path[VMCI_UNIX_SUN_PATH];
	char			 name[VMCI_UNIX_SUN_PATH + 8];	/* "unix:PATH" */
	dev_t			 dev;		/* our socket file, so that */
	ino_t			 ino;		/* free unlinks only ours */

	struct vmci_acceptor	 acc;

	unsigned int		 timeout_ms;
	struct vmci_unix_pendings pending;
	size_t			 npending;

	vmci_accept_cb		 acb;
	vmci_error_cb		 ecb;
	void			*arg;
};

static int
vmci_unix_check(const struct vmci_addr *a, char *err, size_t errlen)
{
	size_t n = strnlen(a->path, sizeof a->path);

	if (n == 0) {
		vmci_shim_err(err, errlen, "unix: address has no path");
		return -1;
	}
	if (n >= VMCI_UNIX_SUN_PATH || n >= sizeof a->path) {
		vmci_shim_err(err, errlen, "unix:%.32s...: path is %zu bytes, "
		    "a socket path holds at most %zu", a->path, n,
		    VMCI_UNIX_SUN_PATH - 1);
		return -1;
	}
	return 0;
}

static uint64_t
vmci_unix_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
vmci_unix_sockaddr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	/* Length checked by vmci_unix_check. */
	memcpy(sun->sun_path, path, strlen(path) + 1);
}

/* bind(2) would say ENOENT; name the directory so the operator knows. */
static int
vmci_unix_check_parent(const char *path, char *err, size_t errlen)
{
	char		 dir[VMCI_UNIX_SUN_PATH];
	char		*slash;
	struct stat	 sb;

	memcpy(dir, path, strlen(path) + 1);
	if ((slash = strrchr(dir, '/')) == NULL)
		memcpy(dir, ".", 2);
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &sb) == -1) {
		vmci_shim_err(err, errlen, "unix:%s: directory %s: %s", path,
		    dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		vmci_shim_err(err, errlen, "unix:%s: %s is not a directory",
		    path, dir);
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/*
 * A socket file left by a daemon that died is removed; anything else at the
 * path is refused: a regular file may be someone's data, and a socket that
 * answers belongs to a live process (another muxd, most likely). There is a
 * window between the probe and the unlink; two daemons starting in the same
 * instant on one path is not worth a lock file.
 */
static int
vmci_unix_clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	sun;
	struct stat		sb;
	int			fd, r, saved;

	if (lstat(path, &sb) == -1) {
		if (errno == ENOENT)
			return 0;
		vmci_shim_err(err, errlen, "unix:%s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(sb.st_mode)) {
		vmci_shim_err(err, errlen, "unix:%s: exists and is not a "
		    "socket; refusing to replace it", path);
		errno = EEXIST;
		return -1;
	}

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		vmci_shim_err(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	vmci_unix_sockaddr(path, &sun);
	r = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	saved = errno;
	close(fd);
	/* EAGAIN: a listener whose backlog is full is still a listener. */
	if (r == 0 || saved == EAGAIN || saved == EINPROGRESS) {
		vmci_shim_err(err, errlen, "unix:%s: in use, another process "
		    "is listening on it", path);
		errno = EADDRINUSE;
		return -1;
	}
	if (saved != ECONNREFUSED) {
		vmci_shim_err(err, errlen, "unix:%s: cannot tell whether the "
		    "socket is stale: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		vmci_shim_err(err, errlen, "unix:%s: cannot remove stale "
		    "socket: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void
vmci_unix_pending_free(struct vmci_unix_pending *p)
{
	struct vmci_unix_listener *l = p->l;

	TAILQ_REMOVE(&l->pending, p, entry);
	l->npending--;
	event_free(p->ev);
	if (p->fd != -1)
		close(p->fd);
	free(p);
}

static int
vmci_unix_pending_arm(struct vmci_unix_pending *p, uint64_t now)
{
	struct timeval	tv;
	uint64_t	left;

	left = p->deadline_ms > now ? p->deadline_ms - now : 0;
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	return event_add(p->ev, &tv);
}

/*
 * Take bytes of the CID line, never one past its '\n': peek at what is
 * queued, then consume through the newline, or everything peeked when no
 * newline is there yet (all of it is line, and leaving it queued would keep
 * the fd readable and spin the loop). 1: line complete, 0: more to come,
 * -1: EOF, error, or VMCI_CID_LINE_MAX bytes without a newline.
 */
static int
vmci_unix_pending_read(struct vmci_unix_pending *p)
{
	char	 peek[VMCI_CID_LINE_MAX];
	char	*nl;
	ssize_t	 n;

	n = recv(p->fd, peek, sizeof p->line - p->len, MSG_PEEK);
	if (n == -1)
		return (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR) ? 0 : -1;
	if (n == 0)
		return -1;
	if ((nl = memchr(peek, '\n', (size_t)n)) != NULL)
		n = nl - peek + 1;

	n = recv(p->fd, p->line + p->len, (size_t)n, 0);
	if (n == -1)
		return (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR) ? 0 : -1;
	if (n == 0)
		return -1;
	p->len += (size_t)n;
	if (p->line[p->len - 1] == '\n')
		return 1;
	if (p->len == sizeof p->line)
		return -1;
	return 0;
}

static void
vmci_unix_pending_cb(int fd, short what, void *arg)
{
	struct vmci_unix_pending	*p = arg;
	struct vmci_unix_listener	*l = p->l;
	vmci_accept_cb			 acb = l->acb;
	vmci_error_cb			 ecb = l->ecb;
	void				*cbarg = l->arg;
	char				 peer[VMCI_PEER_MAX];
	const char			*reason;
	uint64_t			 now;
	uint32_t			 cid;
	int				 r = 0;

	if (what & EV_READ)
		r = vmci_unix_pending_read(p);
	now = vmci_unix_now_ms();
	if (r == 1) {
		if (vmci_parse_cid_line(p->line, p->len, &cid) == 0) {
			p->fd = -1;	/* now the caller's */
			snprintf(peer, sizeof peer, "unix:cid=%u fd=%d", cid,
			    fd);
			vmci_unix_pending_free(p);
			acb(fd, cid, peer, cbarg);
			return;
		}
		reason = "cid_line";
	} else if (r == -1)
		reason = "cid_line";
	else if ((what & EV_TIMEOUT) || now >= p->deadline_ms)
		reason = "cid_line_timeout";
	else if (vmci_unix_pending_arm(p, now) == -1)
		reason = "accept";
	else
		return;

	memcpy(peer, p->peer, sizeof peer);
	vmci_unix_pending_free(p);
	if (ecb != NULL)
		ecb(reason, peer, cbarg);
}

static int
vmci_unix_pending_new(struct vmci_unix_listener *l, int fd)
{
	struct vmci_unix_pending	*p;
	uint64_t			 now = vmci_unix_now_ms();

	if ((p = calloc(1, sizeof *p)) == NULL)
		return -1;
	p->l = l;
	p->fd = fd;
	p->deadline_ms = now + l->timeout_ms;
	snprintf(p->peer, sizeof p->peer, "unix:fd=%d", fd);
	/* Not persistent: re-armed with what is left of the deadline, so a
	 * client dribbling one byte at a time gets no more time in total. */
	if ((p->ev = event_new(l->base, fd, EV_READ, vmci_unix_pending_cb,
	    p)) == NULL) {
		free(p);
		return -1;
	}
	TAILQ_INSERT_TAIL(&l->pending, p, entry);
	l->npending++;
	if (vmci_unix_pending_arm(p, now) == -1) {
		p->fd = -1;	/* the caller closes it */
		vmci_unix_pending_free(p);
		return -1;
	}
	return 0;
}

/* An accepted connection: wait for its CID line (bounded backlog). */
static void
vmci_unix_on_fd(int fd, const struct sockaddr *sa, unsigned int len, void *arg)
{
	struct vmci_unix_listener	*l = arg;
	vmci_error_cb			 ecb = l->ecb;
	void				*cbarg = l->arg;
	char				 peer[VMCI_PEER_MAX];

	(void)sa;
	(void)len;
	snprintf(peer, sizeof peer, "unix:fd=%d", fd);
	if (l->npending >= VMCI_PENDING_MAX) {
		close(fd);
		if (ecb != NULL)
			ecb("cid_line_backlog", peer, cbarg);
		return;
	}
	if (vmci_unix_pending_new(l, fd) == -1) {
		close(fd);
		if (ecb != NULL)
			ecb("accept", peer, cbarg);
	}
}

static void
vmci_unix_on_error(const char *reason, void *arg)
{
	struct vmci_unix_listener *l = arg;

	if (l->ecb != NULL)
		l->ecb(reason, l->name, l->arg);
}

static void vmci_unix_free(void *);

/*
 * The socket is made the careful way: non-blocking and close-on-exec from
 * the start, the path length checked, a stale socket file replaced and
 * anything else refused. Its mode is left to the umask: emulated agents
 * in a demo may run as another user.
 */
static void *
vmci_unix_listen(struct event_base *base, const struct vmci_addr *a,
    vmci_accept_cb acb, vmci_error_cb ecb, void *arg, char *err,
    size_t errlen)
{
	struct vmci_unix_listener	*l;
	struct sockaddr_un		 sun;
	struct stat			 sb;

	if (vmci_unix_check(a, err, errlen) == -1)
		return NULL;
	if (acb == NULL) {
		vmci_shim_err(err, errlen, "unix:%s: no accept callback",
		    a->path);
		return NULL;
	}
	if ((l = calloc(1, sizeof *l)) == NULL) {
		vmci_shim_err(err, errlen, "out of memory");
		return NULL;
	}
	l->base = base;
	l->fd = -1;
	memcpy(l->path, a->path, strlen(a->path) + 1);
	snprintf(l->name, sizeof l->name, "unix:%s", l->path);
	l->timeout_ms = VMCI_CID_LINE_TIMEOUT_MS;
	TAILQ_INIT(&l->pending);
	l->acb = acb;
	l->ecb = ecb;
	l->arg = arg;

	if (vmci_unix_check_parent(l->path, err, errlen) == -1 ||
	    vmci_unix_clear_stale(l->path, err, errlen) == -1)
		goto fail;

	if ((l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		vmci_shim_err(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	vmci_unix_sockaddr(l->path, &sun);
	if (bind(l->fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		vmci_shim_err(err, errlen, "%s: bind: %s", l->name,
		    strerror(errno));
		goto fail;
	}
	if (lstat(l->path, &sb) == -1) {
		vmci_shim_err(err, errlen, "%s: %s", l->name, strerror(errno));
		unlink(l->path);
		goto fail;
	}
	l->dev = sb.st_dev;
	l->ino = sb.st_ino;
	if (listen(l->fd, SOMAXCONN) == -1) {
		vmci_shim_err(err, errlen, "%s: listen: %s", l->name,
		    strerror(errno));
		goto fail;
	}

	if (vmci_acceptor_start(&l->acc, base, l->fd, vmci_unix_on_fd,
	    vmci_unix_on_error, l) == -1) {
		vmci_shim_err(err, errlen, "%s: cannot set up events",
		    l->name);
		goto fail;
	}
	return l;

fail:
	vmci_unix_free(l);
	return NULL;
}

static void
vmci_unix_pause(void *state, int paused)
{
	struct vmci_unix_listener *l = state;

	vmci_acceptor_pause(&l->acc, paused);
}

/* 0 restores the default. Connections already pending keep their deadline. */
static void
vmci_unix_set_timeout_ms(void *state, unsigned int ms)
{
	struct vmci_unix_listener *l = state;

	l->timeout_ms = ms == 0 ? VMCI_CID_LINE_TIMEOUT_MS : ms;
}

static size_t
vmci_unix_pending(const void *state)
{
	const struct vmci_unix_listener *l = state;

	return l->npending;
}

static void
vmci_unix_free(void *state)
{
	struct vmci_unix_listener	*l = state;
	struct vmci_unix_pending	*p;
	struct stat			 sb;

	while ((p = TAILQ_FIRST(&l->pending)) != NULL)
		vmci_unix_pending_free(p);
	vmci_acceptor_free(&l->acc);
	if (l->fd != -1) {
		close(l->fd);
		/* Only our own file: a successor may have replaced it. */
		if (l->ino != 0 && lstat(l->path, &sb) == 0 &&
		    sb.st_dev == l->dev && sb.st_ino == l->ino)
			unlink(l->path);
	}
	free(l);
}

static int
vmci_unix_connect(const struct vmci_addr *a, uint32_t cid, char *err,
    size_t errlen)
{
	struct sockaddr_un	sun;
	char			line[VMCI_CID_LINE_MAX + 1];
	size_t			len, off;
	ssize_t			n;
	int			fd, saved;

	if (vmci_unix_check(a, err, errlen) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (cid < VMCI_CID_MIN || cid > VMCI_CID_MAX) {
		vmci_shim_err(err, errlen, "CID %u out of range %u..%u", cid,
		    VMCI_CID_MIN, VMCI_CID_MAX);
		errno = EINVAL;
		return -1;
	}
	len = (size_t)snprintf(line, sizeof line, "CID %u\n", cid);

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		vmci_shim_err(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	vmci_unix_sockaddr(a->path, &sun);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		vmci_shim_err(err, errlen, "unix:%s: connect: %s", a->path,
		    strerror(errno));
		goto fail;
	}
	for (off = 0; off < len; off += (size_t)n) {
		/* MSG_NOSIGNAL: a listener that hung up is an error, not a
		 * signal that kills the caller. */
		n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR) {
				n = 0;
				continue;
			}
			vmci_shim_err(err, errlen, "unix:%s: sending CID "
			    "line: %s", a->path, strerror(errno));
			goto fail;
		}
	}
	return fd;

fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

static const char *
vmci_unix_describe(const void *state)
{
	return "unix backend, emulated transport (protocol section 7)";
}

const struct vmci_backend_ops vmci_unix_ops = {
	.check = vmci_unix_check,
	.listen = vmci_unix_listen,
	.pause = vmci_unix_pause,
	.set_timeout_ms = vmci_unix_set_timeout_ms,
	.pending = vmci_unix_pending,
	.free = vmci_unix_free,
	.connect = vmci_unix_connect,
	.describe = vmci_unix_describe,
};
