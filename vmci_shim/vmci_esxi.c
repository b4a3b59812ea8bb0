/*
 * vmci_esxi.c: the vSockets address family on ESXi, found at run time.
 *
 * On Linux the family is the constant AF_VSOCK. On ESXi (a userworld, where
 * uname(2) says "VMkernel") it is not a compile-time constant: the vSockets
 * module registers a family on demand and hands its number out through the
 * vsock device. VMware's vSockets API documents the lookup as
 * VMCISock_GetAFValueFd() in vmci_sockets.h (open-vm-tools,
 * lib/include/vmci_sockets.h; the vSockets Programming Guide): open
 * "/dev/vsock" read-write, or else the classic ESX device
 * "/vmfs/devices/char/vsock/vsock", then ioctl(fd,
 * VMCI_SOCKETS_GET_AF_VALUE = 1976, &family). A negative family or a
 * failed ioctl means no vSockets. The descriptor must stay open while the
 * family is in use ("so that the socket implementation knows that the
 * socket family is still in use"), so it is returned to the caller, who
 * keeps it (vmci_vsock.c: for the life of the process).
 *
 * Everything is passed in (device paths, the ioctl), so the unit tests run
 * the lookup against a fake device and a stub ioctl and never touch this
 * machine's vsock device, which belongs to its host.
 */
#include <sys/ioctl.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmci_backend.h"

const char *const vmci_esxi_devices[] = {
	VMCI_ESXI_DEVICE,
	VMCI_ESXI_CLASSIC_DEVICE,
	NULL
};

/* What uname(2) names ESXi's kernel; "Linux" elsewhere. */
int
vmci_esxi_is_vmkernel(const char *sysname)
{
	return sysname != NULL && strcmp(sysname, "VMkernel") == 0;
}

static int
vmci_esxi_ioctl_real(int fd, unsigned long request, int *out)
{
	return ioctl(fd, request, out);
}

int
vmci_esxi_af_value(const char *const devices[], vmci_esxi_ioctl_fn fn,
    int *fdp, char *source, size_t sourcelen, char *err, size_t errlen)
{
	char	tried[2 * VMCI_ESXI_ERR_PART];
	size_t	n = 0;
	int	fd = -1, family = -1, i, saved;

	if (fn == NULL)
		fn = vmci_esxi_ioctl_real;
	tried[0] = '\0';
	/* The first device that opens is the one that answers. */
	for (i = 0; devices[i] != NULL; i++) {
		if ((fd = open(devices[i], O_RDWR | O_CLOEXEC)) != -1)
			break;
		if (n < sizeof tried)
			n += (size_t)snprintf(tried + n, sizeof tried - n,
			    "%s%s: %s", n > 0 ? "; " : "", devices[i],
			    strerror(errno));
	}
	if (fd == -1) {
		vmci_shim_err(err, errlen, "no vSockets device (%s)",
		    n > 0 ? tried : "none given");
		errno = ENOENT;
		return -1;
	}
	if (fn(fd, VMCI_ESXI_IOCTL_GET_AF_VALUE, &family) == -1) {
		saved = errno;
		vmci_shim_err(err, errlen, "%s: ioctl GET_AF_VALUE: %s",
		    devices[i], strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	if (family < 0) {
		vmci_shim_err(err, errlen, "%s: ioctl GET_AF_VALUE gave %d "
		    "(vSockets not available)", devices[i], family);
		close(fd);
		errno = EAFNOSUPPORT;
		return -1;
	}
	*fdp = fd;
	if (source != NULL && sourcelen > 0)
		snprintf(source, sourcelen, "%s", devices[i]);
	return family;
}
