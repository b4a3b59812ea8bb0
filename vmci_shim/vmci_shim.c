/*
 * vmci_shim.c: agent endpoint names, the emulated transport's CID line, and
 * dispatch to the backend that owns the socket family.
 *
 * Nothing here knows a socket family: each backend file does (see
 * vmci_backend.h), so a new transport is a new file and a table entry.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <event2/event.h>
#include "vmci_backend.h"

#define VMCI_UNIX_PREFIX	"unix:"
#define VMCI_VSOCK_PREFIX	"vsock:"

struct vmci_listener {
	const struct vmci_backend_ops	*ops;
	void				*state;
};

static const struct vmci_backend_ops *
vmci_shim_ops(enum vmci_backend backend)
{
	switch (backend) {
	case VMCI_UNIX:
		return &vmci_unix_ops;
	case VMCI_VSOCK:
		return &vmci_vsock_ops;
	}
	return NULL;
}

void
vmci_shim_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Plain decimal: digits only, at least one, no sign, no spaces (strtoul
 * would take all three), and no value above UINT32_MAX.
 */
static int
vmci_shim_u32(const char *s, size_t len, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

int
vmci_addr_parse(const char *s, struct vmci_addr *a, char *err, size_t errlen)
{
	const struct vmci_backend_ops *ops;
	const char *cid, *port, *colon;
	size_t n;

	memset(a, 0, sizeof *a);
	if (s == NULL) {
		vmci_shim_err(err, errlen, "no address");
		return -1;
	}
	if (strncmp(s, VMCI_UNIX_PREFIX, strlen(VMCI_UNIX_PREFIX)) == 0) {
		s += strlen(VMCI_UNIX_PREFIX);
		n = strlen(s);
		if (n == 0) {
			vmci_shim_err(err, errlen, "unix: address has no path");
			return -1;
		}
		if (n >= sizeof a->path) {
			vmci_shim_err(err, errlen, "unix:%.32s...: path is %zu "
			    "bytes, at most %zu fit", s, n, sizeof a->path - 1);
			return -1;
		}
		a->backend = VMCI_UNIX;
		memcpy(a->path, s, n + 1);
	} else if (strncmp(s, VMCI_VSOCK_PREFIX,
	    strlen(VMCI_VSOCK_PREFIX)) == 0) {
		cid = s + strlen(VMCI_VSOCK_PREFIX);
		if ((colon = strchr(cid, ':')) == NULL) {
			vmci_shim_err(err, errlen, "%s: want vsock:CID:PORT", s);
			return -1;
		}
		port = colon + 1;
		n = (size_t)(colon - cid);
		if (n == 3 && strncmp(cid, "any", 3) == 0)
			a->cid = VMCI_CID_ANY;
		else if (vmci_shim_u32(cid, n, &a->cid) == -1) {
			vmci_shim_err(err, errlen, "%s: CID must be a decimal "
			    "number up to 4294967295 or \"any\"", s);
			return -1;
		}
		if (vmci_shim_u32(port, strlen(port), &a->port) == -1) {
			vmci_shim_err(err, errlen, "%s: port must be a decimal "
			    "number up to 4294967295", s);
			return -1;
		}
		a->backend = VMCI_VSOCK;
	} else {
		vmci_shim_err(err, errlen, "%s: unknown transport (want "
		    "unix:PATH or vsock:CID:PORT)", s);
		return -1;
	}

	ops = vmci_shim_ops(a->backend);
	if (ops->check(a, err, errlen) == -1) {
		memset(a, 0, sizeof *a);
		return -1;
	}
	return 0;
}

const char *
vmci_backend_name(enum vmci_backend backend)
{
	switch (backend) {
	case VMCI_UNIX:
		return "unix";
	case VMCI_VSOCK:
		return "vsock";
	}
	return "unknown";
}

/*
 * The emulated transport's stamp, section 7: "CID <n>\n" and nothing else.
 * Strict on purpose: it stands in for an identity the hypervisor would
 * give, so anything loose here would let two spellings name one VM.
 */
int
vmci_parse_cid_line(const char *line, size_t len, uint32_t *cid)
{
	static const char	 prefix[] = "CID ";
	const size_t		 plen = sizeof prefix - 1;
	const char		*digits;
	uint32_t		 v;

	if (line == NULL || len > VMCI_CID_LINE_MAX || len < plen + 2)
		return -1;
	if (memcmp(line, prefix, plen) != 0 || line[len - 1] != '\n')
		return -1;
	digits = line + plen;
	if (digits[0] == '0')
		return -1;
	if (vmci_shim_u32(digits, len - plen - 1, &v) == -1)
		return -1;
	if (v < VMCI_CID_MIN || v > VMCI_CID_MAX)
		return -1;
	*cid = v;
	return 0;
}

struct vmci_listener *
vmci_listen(struct event_base *base, const struct vmci_addr *a,
    vmci_accept_cb acb, vmci_error_cb ecb, void *arg, char *err,
    size_t errlen)
{
	const struct vmci_backend_ops	*ops;
	struct vmci_listener		*l;

	if ((ops = vmci_shim_ops(a->backend)) == NULL) {
		vmci_shim_err(err, errlen, "unknown backend %d", a->backend);
		return NULL;
	}
	if ((l = calloc(1, sizeof *l)) == NULL) {
		vmci_shim_err(err, errlen, "out of memory");
		return NULL;
	}
	l->ops = ops;
	if ((l->state = ops->listen(base, a, acb, ecb, arg, err,
	    errlen)) == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

void
vmci_listener_pause(struct vmci_listener *l, int paused)
{
	l->ops->pause(l->state, paused);
}

void
vmci_listener_set_timeout_ms(struct vmci_listener *l, unsigned int ms)
{
	l->ops->set_timeout_ms(l->state, ms);
}

size_t
vmci_listener_pending(const struct vmci_listener *l)
{
	return l->ops->pending(l->state);
}

const char *
vmci_listener_describe(const struct vmci_listener *l)
{
	return l->ops->describe(l->state);
}

void
vmci_listener_free(struct vmci_listener *l)
{
	if (l == NULL)
		return;
	l->ops->free(l->state);
	free(l);
}

int
vmci_connect(const struct vmci_addr *a, uint32_t cid, char *err,
    size_t errlen)
{
	const struct vmci_backend_ops *ops;

	if ((ops = vmci_shim_ops(a->backend)) == NULL) {
		vmci_shim_err(err, errlen, "unknown backend %d", a->backend);
		errno = EINVAL;
		return -1;
	}
	return ops->connect(a, cid, err, errlen);
}

/* ---- the shared acceptor (see vmci_backend.h) ---- */

static void
vmci_acceptor_update(struct vmci_acceptor *a)
{
	if (a->paused || a->resting)
		event_del(a->ev_accept);
	else
		event_add(a->ev_accept, NULL);
}

static void
vmci_acceptor_rest_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vmci_acceptor *a = arg;

	(void)fd;
	(void)what;
	a->resting = 0;
	vmci_acceptor_update(a);
}

static void
vmci_acceptor_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct vmci_acceptor *a = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct timeval tv = {
		.tv_sec = VMCI_ACCEPT_PAUSE_MS / 1000,
		.tv_usec = (VMCI_ACCEPT_PAUSE_MS % 1000) * 1000,
	};
	const char *reason;
	int fd;

	(void)what;
	memset(&ss, 0, sizeof(ss));
	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
		case EINTR:
		case ECONNABORTED:
			return;
		case EMFILE:
		case ENFILE:
			reason = "accept_emfile";
			break;
		default:
			reason = "accept";
			break;
		}
		a->resting = 1;
		vmci_acceptor_update(a);
		evtimer_add(a->ev_rest, &tv);
		a->on_error(reason, a->arg);
		return;
	}
	a->on_fd(fd, (struct sockaddr *)&ss, (unsigned int)len, a->arg);
}

int
vmci_acceptor_start(struct vmci_acceptor *a, struct event_base *base, int fd,
    void (*on_fd)(int, const struct sockaddr *, unsigned int, void *),
    void (*on_error)(const char *, void *), void *arg)
{
	memset(a, 0, sizeof(*a));
	a->on_fd = on_fd;
	a->on_error = on_error;
	a->arg = arg;
	a->ev_accept = event_new(base, fd, EV_READ | EV_PERSIST, vmci_acceptor_cb, a);
	a->ev_rest = evtimer_new(base, vmci_acceptor_rest_cb, a);
	if (a->ev_accept == NULL || a->ev_rest == NULL ||
	    event_add(a->ev_accept, NULL) == -1)
		return -1;
	return 0;
}

void
vmci_acceptor_pause(struct vmci_acceptor *a, int paused)
{
	a->paused = paused != 0;
	vmci_acceptor_update(a);
}

void
vmci_acceptor_free(struct vmci_acceptor *a)
{
	if (a->ev_accept != NULL)
		event_free(a->ev_accept);
	if (a->ev_rest != NULL)
		event_free(a->ev_rest);
	a->ev_accept = a->ev_rest = NULL;
}
