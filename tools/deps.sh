#!/bin/sh
# Install the Debian packages the build, the tests and the demo need, when
# they are missing. Runs apt-get only as root and only for what is absent.
set -eu

# The qemu line is for the vsock guest (tests/vsock): QEMU, a static
# busybox, and what builds the initramfs and unpacks kernel modules.
# The last line is for packaging (make vib, bundle, test-vib); busybox-static
# also runs the ESXi init script in tests/vib.
PKGS="build-essential pkg-config libevent-dev protobuf-c-compiler
libprotobuf-c-dev libssl-dev openssl libcmocka-dev libinih-dev
python3 procps clang
qemu-system-x86 busybox-static cpio gzip xz-utils zstd
binutils zlib1g-dev zip unzip
clamav-daemon"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root, or apt-get install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
