/*
 * vmci_backend.h: what vmci_shim.c needs from each backend, and the little
 * the backends share. Private to vmci_shim/.
 *
 * A backend is a table of operations on an opaque listener state; the public
 * struct vmci_listener (vmci_shim.c) is only the table plus that state, so
 * socket families stay inside vmci_unix.c and vmci_vsock.c (with
 * vmci_esxi.c, which finds the vSockets family at run time on ESXi).
 */
#ifndef MUX_VMCI_BACKEND_H
#define MUX_VMCI_BACKEND_H

#include "vmci_shim.h"

/* Room for "vsock:cid=4294967294 port=4294967295 fd=2147483647". */
#define VMCI_PEER_MAX	64

struct vmci_backend_ops {
	/* Backend limits on a parsed address (sun_path size, ...). */
	int	 (*check)(const struct vmci_addr *, char *, size_t);
	void	*(*listen)(struct event_base *, const struct vmci_addr *,
		    vmci_accept_cb, vmci_error_cb, void *, char *, size_t);
	void	 (*pause)(void *, int);
	void	 (*set_timeout_ms)(void *, unsigned int);
	size_t	 (*pending)(const void *);
	void	 (*free)(void *);
	int	 (*connect)(const struct vmci_addr *, uint32_t, char *, size_t);
	/* For muxd's log: which backend and why ("vsock, Linux AF_VSOCK"). */
	const char *(*describe)(const void *);
};

/*
 * The listening half both socket backends share (vmci_shim.c): one accept
 * per wake-up (the event is level-triggered, so the loop comes back for the
 * rest), a rest of VMCI_ACCEPT_PAUSE_MS after EMFILE and the like (the fd
 * stays readable and the loop would spin), and the caller's pause. The
 * callbacks are the acceptor's last act, so they may free it.
 */
struct sockaddr;
struct vmci_acceptor {
	struct event	*ev_accept;
	struct event	*ev_rest;
	int		 paused;	/* by the caller */
	int		 resting;	/* after EMFILE and the like */
	void		(*on_fd)(int fd, const struct sockaddr *, unsigned int len,
			    void *arg);
	void		(*on_error)(const char *reason, void *arg);
	void		*arg;
};

/* vmci_shim.c */
void	 vmci_shim_err(char *, size_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
int	 vmci_acceptor_start(struct vmci_acceptor *, struct event_base *, int fd,
	    void (*)(int, const struct sockaddr *, unsigned int, void *),
	    void (*)(const char *, void *), void *);
void	 vmci_acceptor_pause(struct vmci_acceptor *, int paused);
void	 vmci_acceptor_free(struct vmci_acceptor *);

/* vmci_unix.c */
extern const struct vmci_backend_ops vmci_unix_ops;

/* vmci_vsock.c */
extern const struct vmci_backend_ops vmci_vsock_ops;

/*
 * The vSockets address family in use: AF_VSOCK on Linux, the number the
 * vsock device gives on ESXi (vmci_esxi.c). Chosen by the kernel's name.
 */
#define VMCI_FAMILY_DESC_MAX	128
struct vmci_family {
	int	 af;			/* socket(2) domain and svm_family */
	int	 fd;			/* ESXi: the device, kept open; else -1 */
	char	 desc[VMCI_FAMILY_DESC_MAX];	/* for logs */
};
typedef int (*vmci_esxi_ioctl_fn)(int fd, unsigned long request, int *out);
int	 vmci_vsock_family_select(const char *sysname,
	    const char *const devices[], vmci_esxi_ioctl_fn,
	    struct vmci_family *, char *, size_t);

/* vmci_esxi.c: VMware's VMCISock_GetAFValueFd(), see the file's top. */
#define VMCI_ESXI_DEVICE		"/dev/vsock"
#define VMCI_ESXI_CLASSIC_DEVICE	"/vmfs/devices/char/vsock/vsock"
#define VMCI_ESXI_IOCTL_GET_AF_VALUE	1976	/* VMCI_SOCKETS_GET_AF_VALUE */
#define VMCI_ESXI_ERR_PART		128	/* one device's open error */
extern const char *const vmci_esxi_devices[];	/* the two above, NULL */
int	 vmci_esxi_is_vmkernel(const char *sysname);
int	 vmci_esxi_af_value(const char *const devices[], vmci_esxi_ioctl_fn,
	    int *fd, char *source, size_t, char *err, size_t);

#endif
