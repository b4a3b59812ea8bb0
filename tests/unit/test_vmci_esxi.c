/*
 * test_vmci_esxi.c: the vSockets family lookup (vmci_esxi.c) and the
 * Linux/ESXi choice (vmci_vsock_family_select) against a fake device file
 * and a stub ioctl.
 *
 * Never the real vsock device or an AF_VSOCK socket: this machine's vsock
 * belongs to its host. The only real ioctl here goes to a regular file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmci_backend.h"

#define TEST_FAMILY	53	/* what the stub device answers */

struct test_dev {
	char	path[64];	/* a regular file standing in for /dev/vsock */
};

/* What the stub ioctl saw and should do. */
static int		 stub_calls;
static int		 stub_fd = -1;
static unsigned long	 stub_request;
static int		 stub_fail_errno;	/* 0: succeed */
static int		 stub_family = TEST_FAMILY;

static int
stub_ioctl(int fd, unsigned long request, int *out)
{
	stub_calls++;
	stub_fd = fd;
	stub_request = request;
	if (stub_fail_errno != 0) {
		errno = stub_fail_errno;
		return -1;
	}
	*out = stub_family;
	return 0;
}

static int
test_setup(void **state)
{
	struct test_dev *d = calloc(1, sizeof *d);
	int fd;

	assert_non_null(d);
	snprintf(d->path, sizeof d->path, "/tmp/mux-test-vsockdev-XXXXXX");
	fd = mkstemp(d->path);
	assert_true(fd >= 0);
	close(fd);
	stub_calls = 0;
	stub_fd = -1;
	stub_request = 0;
	stub_fail_errno = 0;
	stub_family = TEST_FAMILY;
	*state = d;
	return 0;
}

static int
test_teardown(void **state)
{
	struct test_dev *d = *state;

	unlink(d->path);
	free(d);
	return 0;
}

static int
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* The first device that opens answers; its fd stays open for the caller. */
static void
test_af_value(void **state)
{
	struct test_dev *d = *state;
	const char *devs[] = { "/nonexistent/mux-test/vsock", d->path, NULL };
	char src[64], err[256] = "";
	int fd = -1;

	assert_int_equal(vmci_esxi_af_value(devs, stub_ioctl, &fd, src,
	    sizeof src, err, sizeof err), TEST_FAMILY);
	assert_int_equal(stub_calls, 1);
	assert_int_equal(stub_request, VMCI_ESXI_IOCTL_GET_AF_VALUE);
	assert_int_equal(stub_request, 1976);	/* VMware's number */
	assert_int_equal(fd, stub_fd);
	assert_true(fd_is_open(fd));
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_string_equal(src, d->path);
	close(fd);
}

static void
test_af_value_ioctl_fails(void **state)
{
	struct test_dev *d = *state;
	const char *devs[] = { d->path, NULL };
	char err[256] = "";
	int fd = -1;

	stub_fail_errno = ENOTTY;
	assert_int_equal(vmci_esxi_af_value(devs, stub_ioctl, &fd, NULL, 0,
	    err, sizeof err), -1);
	assert_int_equal(errno, ENOTTY);
	assert_int_equal(fd, -1);
	assert_false(fd_is_open(stub_fd));	/* not leaked */
	assert_non_null(strstr(err, d->path));
	assert_non_null(strstr(err, "ioctl GET_AF_VALUE"));
}

/* The real ioctl, on a regular file: refused, and said so. */
static void
test_af_value_real_ioctl_on_file(void **state)
{
	struct test_dev *d = *state;
	const char *devs[] = { d->path, NULL };
	char err[256] = "";
	int fd = -1;

	assert_int_equal(vmci_esxi_af_value(devs, NULL, &fd, NULL, 0, err,
	    sizeof err), -1);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err, strerror(ENOTTY)));
}

static void
test_af_value_negative(void **state)
{
	struct test_dev *d = *state;
	const char *devs[] = { d->path, NULL };
	char err[256] = "";
	int fd = -1;

	stub_family = -1;
	assert_int_equal(vmci_esxi_af_value(devs, stub_ioctl, &fd, NULL, 0,
	    err, sizeof err), -1);
	assert_int_equal(errno, EAFNOSUPPORT);
	assert_false(fd_is_open(stub_fd));
	assert_non_null(strstr(err, "gave -1"));
}

/* No device: every path tried is named with its reason. */
static void
test_af_value_no_device(void **state)
{
	const char *devs[] = { "/nonexistent/mux-test/a",
	    "/nonexistent/mux-test/b", NULL };
	const char *none[] = { NULL };
	char err[256] = "";
	int fd = -1;

	assert_int_equal(vmci_esxi_af_value(devs, stub_ioctl, &fd, NULL, 0,
	    err, sizeof err), -1);
	assert_int_equal(stub_calls, 0);
	assert_non_null(strstr(err, "no vSockets device"));
	assert_non_null(strstr(err, "/nonexistent/mux-test/a: "));
	assert_non_null(strstr(err, "; /nonexistent/mux-test/b: "));
	assert_non_null(strstr(err, strerror(ENOENT)));
	assert_int_equal(vmci_esxi_af_value(none, stub_ioctl, &fd, NULL, 0,
	    err, sizeof err), -1);
	assert_non_null(strstr(err, "none given"));
	/* The real device list is VMware's two paths. */
	assert_string_equal(vmci_esxi_devices[0], "/dev/vsock");
	assert_string_equal(vmci_esxi_devices[1],
	    "/vmfs/devices/char/vsock/vsock");
	assert_null(vmci_esxi_devices[2]);
}

static void
test_is_vmkernel(void **state)
{
	assert_true(vmci_esxi_is_vmkernel("VMkernel"));
	assert_false(vmci_esxi_is_vmkernel("Linux"));
	assert_false(vmci_esxi_is_vmkernel("vmkernel"));
	assert_false(vmci_esxi_is_vmkernel(""));
	assert_false(vmci_esxi_is_vmkernel(NULL));
}

/* Linux: the constant, no device touched. ESXi: the device's answer. */
static void
test_family_select(void **state)
{
	struct test_dev *d = *state;
	const char *devs[] = { d->path, NULL };
	const char *none[] = { "/nonexistent/mux-test/vsock", NULL };
	struct vmci_family fam;
	char err[256] = "", want[128];

	assert_int_equal(vmci_vsock_family_select("Linux", devs, stub_ioctl,
	    &fam, err, sizeof err), 0);
	assert_int_equal(fam.af, AF_VSOCK);
	assert_int_equal(fam.af, 40);
	assert_int_equal(fam.fd, -1);
	assert_string_equal(fam.desc, "Linux AF_VSOCK (40)");
	assert_int_equal(stub_calls, 0);

	assert_int_equal(vmci_vsock_family_select("VMkernel", devs, stub_ioctl,
	    &fam, err, sizeof err), 0);
	assert_int_equal(fam.af, TEST_FAMILY);
	assert_true(fd_is_open(fam.fd));
	snprintf(want, sizeof want, "ESXi vSockets family %d from %s",
	    TEST_FAMILY, d->path);
	assert_string_equal(fam.desc, want);
	close(fam.fd);

	assert_int_equal(vmci_vsock_family_select("VMkernel", none, stub_ioctl,
	    &fam, err, sizeof err), -1);
	assert_non_null(strstr(err, "ESXi vSockets: no vSockets device"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
		T(test_af_value),
		T(test_af_value_ioctl_fails),
		T(test_af_value_real_ioctl_on_file),
		T(test_af_value_negative),
		T(test_af_value_no_device),
		T(test_is_vmkernel),
		T(test_family_select),
#undef T
	};

	return cmocka_run_group_tests_name("vmci_esxi", tests, NULL, NULL);
}
