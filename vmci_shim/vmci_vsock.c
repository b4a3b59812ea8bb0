/*
 * vmci_vsock.c: agent links over vSockets: AF_VSOCK on Linux
 * (<linux/vm_sockets.h>), and on ESXi the family number the vsock device
 * gives at run time (vmci_esxi.c). Which of the two is chosen by the
 * kernel's name (uname: "VMkernel" is ESXi) when the first socket is made,
 * and said in every error and in vmci_listener_describe(), which muxd logs.
 * sockaddr_vm has the same layout on both.
 *
 * The peer's CID comes from the kernel in the accepted sockaddr_vm, so a
 * connection is handed over the moment it is accepted: there is no line to
 * wait for. The CID is passed on as the kernel gives it; which CIDs may be
 * agents is the caller's policy, not the transport's.
 *
 * On systems without AF_VSOCK the backend still links, and says so.
 */
#include <sys/utsname.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "vmci_backend.h"

#ifdef __linux__

#include <sys/socket.h>
#include <linux/vm_sockets.h>

/* Room for "vsock backend, " and a family's description. */
#define VMCI_VSOCK_DESC_MAX	(VMCI_FAMILY_DESC_MAX + 32)

struct vmci_vsock_listener {
	struct event_base	*base;
	int			 fd;
	char			 name[32];	/* "vsock:any:PORT" */
	char			 desc[VMCI_VSOCK_DESC_MAX];
	struct vmci_acceptor	 acc;
	vmci_accept_cb		 acb;
	vmci_error_cb		 ecb;
	void			*arg;
};

/*
 * Linux: AF_VSOCK. ESXi: VMware's run-time lookup, whose device stays open
 * while the family is in use (vmci_esxi.c).
 */
int
vmci_vsock_family_select(const char *sysname, const char *const devices[],
    vmci_esxi_ioctl_fn fn, struct vmci_family *fam, char *err, size_t errlen)
{
	char source[64], why[2 * VMCI_ESXI_ERR_PART + 64];
	int af, fd;

	memset(fam, 0, sizeof *fam);
	fam->fd = -1;
	if (!vmci_esxi_is_vmkernel(sysname)) {
		fam->af = AF_VSOCK;
		snprintf(fam->desc, sizeof fam->desc, "Linux AF_VSOCK (%d)",
		    AF_VSOCK);
		return 0;
	}
	if ((af = vmci_esxi_af_value(devices, fn, &fd, source, sizeof source,
	    why, sizeof why)) == -1) {
		vmci_shim_err(err, errlen, "ESXi vSockets: %s", why);
		return -1;
	}
	fam->af = af;
	fam->fd = fd;
	snprintf(fam->desc, sizeof fam->desc, "ESXi vSockets family %d from %s",
	    af, source);
	return 0;
}

/*
 * The family for this process, looked up once (a failure is not kept: a
 * module loaded later may fix it). Listeners and connections share it, and
 * on ESXi its device stays open until the process exits, because the fds
 * handed out by vmci_connect may live as long.
 */
static int
vmci_vsock_family(struct vmci_family *out, char *err, size_t errlen)
{
	static pthread_mutex_t		lock = PTHREAD_MUTEX_INITIALIZER;
	static struct vmci_family	fam;
	static int			known;
	struct utsname			u;
	int				rc = 0;

	pthread_mutex_lock(&lock);
	if (!known) {
		if (uname(&u) == -1)
			snprintf(u.sysname, sizeof u.sysname, "unknown");
		if (vmci_vsock_family_select(u.sysname, vmci_esxi_devices,
		    NULL, &fam, err, errlen) == 0)
			known = 1;
		else
			rc = -1;
	}
	if (known)
		*out = fam;
	pthread_mutex_unlock(&lock);
	return rc;
}

/* Why socket(2) failed, with what usually fixes it. */
static void
vmci_vsock_socket_err(char *err, size_t errlen, const char *name,
    const struct vmci_family *fam, int e)
{
	vmci_shim_err(err, errlen, "%s: socket (%s): %s%s", name, fam->desc,
	    strerror(e), e == EAFNOSUPPORT && fam->fd == -1 ?
	    " (no vsock transport loaded: vmw_vsock_vmci_transport on VMware, "
	    "vmw_vsock_virtio_transport on KVM, vsock_loopback for tests)" : "");
}

/* The port the kernel picks for "any" would be unknown to every agent. */
static int
vmci_vsock_check(const struct vmci_addr *a, char *err, size_t errlen)
{
	if (a->port == VMADDR_PORT_ANY) {
		vmci_shim_err(err, errlen, "vsock:%u:%u: port %u is "
		    "VMADDR_PORT_ANY", a->cid, a->port, a->port);
		return -1;
	}
	return 0;
}

/* The kernel knows the peer's CID at accept: the connection is ready. */
static void
vmci_vsock_on_fd(int fd, const struct sockaddr *sa, unsigned int len, void *arg)
{
	struct vmci_vsock_listener	*l = arg;
	struct sockaddr_vm		 svm;
	char				 peer[VMCI_PEER_MAX];

	memset(&svm, 0, sizeof svm);
	memcpy(&svm, sa, len < sizeof svm ? len : sizeof svm);
	snprintf(peer, sizeof peer, "vsock:cid=%u port=%u fd=%d",
	    svm.svm_cid, svm.svm_port, fd);
	l->acb(fd, svm.svm_cid, peer, l->arg);
}

static void
vmci_vsock_on_error(const char *reason, void *arg)
{
	struct vmci_vsock_listener *l = arg;

	if (l->ecb != NULL)
		l->ecb(reason, l->name, l->arg);
}

static void vmci_vsock_free(void *);

static void *
vmci_vsock_listen(struct event_base *base, const struct vmci_addr *a,
    vmci_accept_cb acb, vmci_error_cb ecb, void *arg, char *err,
    size_t errlen)
{
	struct vmci_vsock_listener	*l;
	struct sockaddr_vm		 svm;
	struct vmci_family		 fam;
	char				 why[VMCI_VSOCK_DESC_MAX + 64];

	if (vmci_vsock_check(a, err, errlen) == -1)
		return NULL;
	if (vmci_vsock_family(&fam, why, sizeof why) == -1) {
		vmci_shim_err(err, errlen, "vsock:any:%u: %s", a->port, why);
		return NULL;
	}
	if (acb == NULL) {
		vmci_shim_err(err, errlen, "vsock: no accept callback");
		return NULL;
	}
	if ((l = calloc(1, sizeof *l)) == NULL) {
		vmci_shim_err(err, errlen, "out of memory");
		return NULL;
	}
	l->base = base;
	l->fd = -1;
	snprintf(l->name, sizeof l->name, "vsock:any:%u", a->port);
	snprintf(l->desc, sizeof l->desc, "vsock backend, %s", fam.desc);
	l->acb = acb;
	l->ecb = ecb;
	l->arg = arg;

	if ((l->fd = socket(fam.af, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		vmci_vsock_socket_err(err, errlen, l->name, &fam, errno);
		goto fail;
	}
	memset(&svm, 0, sizeof svm);
	svm.svm_family = (sa_family_t)fam.af;
	svm.svm_cid = VMADDR_CID_ANY;	/* the address's CID is ignored */
	svm.svm_port = a->port;
	if (bind(l->fd, (struct sockaddr *)&svm, sizeof svm) == -1) {
		vmci_shim_err(err, errlen, "%s: bind (%s): %s", l->name,
		    fam.desc, strerror(errno));
		goto fail;
	}
	if (listen(l->fd, SOMAXCONN) == -1) {
		vmci_shim_err(err, errlen, "%s: listen (%s): %s", l->name,
		    fam.desc, strerror(errno));
		goto fail;
	}
	if (vmci_acceptor_start(&l->acc, base, l->fd, vmci_vsock_on_fd,
	    vmci_vsock_on_error, l) == -1) {
		vmci_shim_err(err, errlen, "%s: cannot set up events",
		    l->name);
		goto fail;
	}
	return l;

fail:
	vmci_vsock_free(l);
	return NULL;
}

static void
vmci_vsock_pause(void *state, int paused)
{
	struct vmci_vsock_listener *l = state;

	vmci_acceptor_pause(&l->acc, paused);
}

/* Nothing waits for a line here: the kernel knows the CID at accept. */
static void
vmci_vsock_set_timeout_ms(void *state, unsigned int ms)
{
}

static size_t
vmci_vsock_pending(const void *state)
{
	return 0;
}

static const char *
vmci_vsock_describe(const void *state)
{
	const struct vmci_vsock_listener *l = state;

	return l->desc;
}

static void
vmci_vsock_free(void *state)
{
	struct vmci_vsock_listener *l = state;

	vmci_acceptor_free(&l->acc);
	if (l->fd != -1)
		close(l->fd);
	free(l);
}

/* cid is not sent: on this transport the kernel stamps our own CID. */
static int
vmci_vsock_connect(const struct vmci_addr *a, uint32_t cid, char *err,
    size_t errlen)
{
	struct sockaddr_vm	svm;
	struct vmci_family	fam;
	char			name[48], why[VMCI_VSOCK_DESC_MAX + 64];
	int			fd, saved;

	if (a->cid == VMCI_CID_ANY) {
		vmci_shim_err(err, errlen, "vsock:any:%u: cannot connect to "
		    "CID any", a->port);
		errno = EINVAL;
		return -1;
	}
	if (vmci_vsock_check(a, err, errlen) == -1) {
		errno = EINVAL;
		return -1;
	}
	snprintf(name, sizeof name, "vsock:%u:%u", a->cid, a->port);
	if (vmci_vsock_family(&fam, why, sizeof why) == -1) {
		vmci_shim_err(err, errlen, "%s: %s", name, why);
		errno = EAFNOSUPPORT;
		return -1;
	}
	if ((fd = socket(fam.af, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		saved = errno;
		vmci_vsock_socket_err(err, errlen, name, &fam, saved);
		errno = saved;
		return -1;
	}
	memset(&svm, 0, sizeof svm);
	svm.svm_family = (sa_family_t)fam.af;
	svm.svm_cid = a->cid;
	svm.svm_port = a->port;
	if (connect(fd, (struct sockaddr *)&svm, sizeof svm) == -1) {
		saved = errno;
		vmci_shim_err(err, errlen, "%s: connect (%s): %s", name,
		    fam.desc, strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

#else /* !__linux__ */

int
vmci_vsock_family_select(const char *sysname, const char *const devices[],
    vmci_esxi_ioctl_fn fn, struct vmci_family *fam, char *err, size_t errlen)
{
	vmci_shim_err(err, errlen, "vsock: not available on this system");
	return -1;
}

static int
vmci_vsock_check(const struct vmci_addr *a, char *err, size_t errlen)
{
	vmci_shim_err(err, errlen, "vsock: not available on this system");
	errno = EAFNOSUPPORT;
	return -1;
}

static void *
vmci_vsock_listen(struct event_base *base, const struct vmci_addr *a,
    vmci_accept_cb acb, vmci_error_cb ecb, void *arg, char *err,
    size_t errlen)
{
	vmci_vsock_check(a, err, errlen);
	return NULL;
}

/* Unreachable: no listener is ever made. */
static void
vmci_vsock_pause(void *state, int paused)
{
}

static void
vmci_vsock_set_timeout_ms(void *state, unsigned int ms)
{
}

static size_t
vmci_vsock_pending(const void *state)
{
	return 0;
}

static const char *
vmci_vsock_describe(const void *state)
{
	return "vsock backend (not available)";
}

static void
vmci_vsock_free(void *state)
{
}

static int
vmci_vsock_connect(const struct vmci_addr *a, uint32_t cid, char *err,
    size_t errlen)
{
	return vmci_vsock_check(a, err, errlen);
}

#endif /* __linux__ */

const struct vmci_backend_ops vmci_vsock_ops = {
	.check = vmci_vsock_check,
	.listen = vmci_vsock_listen,
	.pause = vmci_vsock_pause,
	.set_timeout_ms = vmci_vsock_set_timeout_ms,
	.pending = vmci_vsock_pending,
	.free = vmci_vsock_free,
	.connect = vmci_vsock_connect,
	.describe = vmci_vsock_describe,
};
