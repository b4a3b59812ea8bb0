/*
 * vmci_backend.h: what vmci_shim.c needs from each backend, and the little
 * the backends share. Private to vmci_shim/.
 *
 * A backend is a table of operations on an opaque listener state; the public
 * struct vmci_listener (vmci_shim.c) is only the table plus that state, so
 * socket families stay inside vmci_unix.c and vmci_vsock.c.
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
};

/* vmci_shim.c */
void	 vmci_shim_err(char *, size_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));

/* vmci_unix.c */
extern const struct vmci_backend_ops vmci_unix_ops;

/* vmci_vsock.c */
extern const struct vmci_backend_ops vmci_vsock_ops;

#endif
