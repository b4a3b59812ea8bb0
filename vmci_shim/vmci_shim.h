/*
 * vmci_shim.h: the one place that knows socket families for agent links.
 *
 * muxd and the tools name an agent endpoint with a string and get back plain
 * connected stream fds plus the peer's CID. Backends, one file each:
 *
 *   unix:PATH        vmci_unix.c   emulated transport (protocol section 7):
 *                                  the client writes "CID <n>\n" first.
 *   vsock:CID:PORT   vmci_vsock.c  vSockets; the CID comes from the kernel.
 *                                  For listening CID is ignored (ANY). The
 *                                  family is AF_VSOCK on Linux and, on ESXi,
 *                                  found at run time (vmci_esxi.c).
 *
 * Threading: the functions are called from the thread that owns the
 * listener's event_base; nothing here is shared between threads.
 */
#ifndef MUX_VMCI_SHIM_H
#define MUX_VMCI_SHIM_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

#define VMCI_CID_MIN		3u		/* lowest guest CID */
#define VMCI_CID_MAX		4294967294u	/* below VMADDR_CID_ANY */
#define VMCI_CID_LINE_MAX	16		/* "CID <n>\n", whole line */
#define VMCI_CID_LINE_TIMEOUT_MS 2000
#define VMCI_CID_ANY		4294967295u	/* "vsock:any:PORT", listening only */
#define VMCI_PENDING_MAX	256		/* unix: accepted, CID line not read yet */
#define VMCI_ACCEPT_PAUSE_MS	1000		/* accept rests this long after EMFILE */

enum vmci_backend {
	VMCI_UNIX = 1,
	VMCI_VSOCK,
};

struct vmci_addr {
	enum vmci_backend	backend;
	char			path[108];	/* unix */
	uint32_t		cid;		/* vsock */
	uint32_t		port;		/* vsock */
};

/*
 * Called for each accepted connection once its CID is known. The callee
 * owns fd (non-blocking). peer is a printable name for logs.
 */
typedef void (*vmci_accept_cb)(int fd, uint32_t cid, const char *peer, void *arg);
/*
 * Called when the shim refuses or cannot take a connection. reason is a
 * short token fit for a counter label: "cid_line" (bad line or EOF before
 * it), "cid_line_timeout", "cid_line_backlog" (too many connections still
 * owing their line; the newest is closed), "accept_emfile" (out of fds;
 * accepting rests for VMCI_ACCEPT_PAUSE_MS), "accept" (any other accept
 * failure). The shim logs nothing itself.
 *
 * Either callback may free the listener: the shim touches nothing of its
 * own after calling one.
 */
typedef void (*vmci_error_cb)(const char *reason, const char *peer, void *arg);

struct vmci_listener;

/* vmci_shim.c */
int	 vmci_addr_parse(const char *, struct vmci_addr *, char *err, size_t errlen);
const char *vmci_backend_name(enum vmci_backend);
int	 vmci_parse_cid_line(const char *line, size_t len, uint32_t *cid);
struct vmci_listener *vmci_listen(struct event_base *, const struct vmci_addr *,
	    vmci_accept_cb, vmci_error_cb, void *arg, char *err, size_t errlen);
void	 vmci_listener_pause(struct vmci_listener *, int paused);
void	 vmci_listener_free(struct vmci_listener *);
/* Which backend listens and how, for the log: "vsock backend, Linux
 * AF_VSOCK (40)". Why one could not start is vmci_listen's err. */
const char *vmci_listener_describe(const struct vmci_listener *);
/* unix only (no-ops on vsock): CID line deadline for new connections. */
void	 vmci_listener_set_timeout_ms(struct vmci_listener *, unsigned int);
/* unix only: connections accepted whose CID line is still awaited. */
size_t	 vmci_listener_pending(const struct vmci_listener *);
/* Blocking connect; for unix the CID line for `cid` is written. */
int	 vmci_connect(const struct vmci_addr *, uint32_t cid, char *err, size_t errlen);

#endif
