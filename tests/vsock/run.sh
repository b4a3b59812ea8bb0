#!/bin/sh
# Real AF_VSOCK tests: boot a small Linux guest under QEMU, run the chosen
# end-to-end tests (tests/vsock/guest-tests) inside it over the kernel's
# vsock_loopback, and return their result. See docs/vsock.md.
#
#   tests/vsock/run.sh test    # the guest tests; last line "N passed, N failed"
#   tests/vsock/run.sh bench   # vsock against unix throughput in the guest
#
# This machine's own vsock belongs to its host: nothing here opens an
# AF_VSOCK socket outside the guest.
#
# Environment: B (build folder, default build; the tests' binaries come from
# $B/e2e, the daemon and tools from build/static/bin), MUX_VSOCK_ACCEL
# (tcg or kvm; default tcg unless KVM is proven to work), MUX_VSOCK_TIMEOUT
# (seconds for the whole guest run, default 420), MUX_VSOCK_TESTS (another
# list than tests/vsock/guest-tests), MUX_BENCH_SECONDS, MUX_BENCH_REPS.
set -u

MODE=${1:-test}
B=${B:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
HERE=tests/vsock
W=build/vsock			# kernel cache, images, logs
K=$W/kernel
STATIC=build/static/bin
TIMEOUT=${MUX_VSOCK_TIMEOUT:-420}
# The guest's own watchdog reports before the host's timeout kills QEMU.
WATCHDOG=$((TIMEOUT - 20))
[ "$WATCHDOG" -ge 10 ] || WATCHDOG=$((TIMEOUT / 2))
TESTS=${MUX_VSOCK_TESTS:-tests/vsock/guest-tests}	# another list: one run
MODULES="vsock vmw_vsock_virtio_transport_common vsock_loopback"

die() {
	echo "vsock: $*" >&2
	echo "vsock: 0 passed, 1 failed"
	exit 1
}

need() {
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 ||
		    die "missing $t (run tools/deps.sh as root)"
	done
}

# --- 1. the kernel, from Debian's cloud kernel package (cached) ----------
#
# linux-image-cloud-amd64 is a metapackage; its Depends names today's
# linux-image-<abi>-cloud-amd64. The package is unpacked, never installed,
# and the modules come from the same package as the kernel.
kernel_resolve() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
	    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\)$/\1/p' |
	    head -n 1
}

kernel_download() {
	rm -rf "$K/dl"
	mkdir -p "$K/dl"
	# The sandbox user _apt may not write into the build folder.
	(cd "$K/dl" && apt-get download -q -o APT::Sandbox::User=root "$1" \
	    >/dev/null 2>&1)
}

kernel_fetch() {
	[ -f "$K/ready" ] && return 0
	need apt-cache apt-get dpkg
	rm -rf "$K"
	mkdir -p "$K/modules"
	pkg=$(kernel_resolve)
	# Stale or missing package lists: refresh once (root only) and retry.
	if [ -z "$pkg" ] || ! kernel_download "$pkg"; then
		[ "$(id -u)" = 0 ] || die "cannot fetch the cloud kernel ($pkg); run apt-get update as root"
		apt-get update -qq >/dev/null 2>&1
		pkg=$(kernel_resolve)
		[ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64"
		kernel_download "$pkg" || die "apt-get download $pkg failed"
	fi
	echo "vsock: fetched $pkg (once; cached in $K)"
	dpkg -x "$K"/dl/*.deb "$K/root" || die "dpkg -x failed"
	cp "$K"/root/boot/vmlinuz-* "$K/vmlinuz" || die "no vmlinuz in $pkg"
	for m in $MODULES; do
		f=$(find "$K/root/lib/modules" -name "$m.ko*" | head -n 1)
		[ -n "$f" ] || die "$pkg has no module $m"
		# busybox insmod wants plain files.
		case "$f" in
		*.ko) cp "$f" "$K/modules/$m.ko" ;;
		*.ko.xz) xz -dc "$f" >"$K/modules/$m.ko" ;;
		*.ko.zst) zstd -qdc "$f" >"$K/modules/$m.ko" ;;
		*.ko.gz) gzip -dc "$f" >"$K/modules/$m.ko" ;;
		*) die "$f: unknown module compression" ;;
		esac || die "cannot unpack $f"
	done
	rm -rf "$K/root" "$K/dl"
	echo "$pkg" >"$K/ready"
}

# --- 2. the base initramfs: busybox, /dev/console, /init, modules --------
base_image() {
	img=$W/base.cpio.gz
	if [ -f "$img" ] && [ "$img" -nt "$HERE/init" ] &&
	    [ "$img" -nt "$K/ready" ]; then
		return 0
	fi
	need cpio gzip
	[ -x /bin/busybox ] && file_is_static /bin/busybox ||
	    die "need a static /bin/busybox (Debian package busybox-static)"
	r=$W/base
	rm -rf "$r"
	mkdir -p "$r/bin" "$r/dev" "$r/proc" "$r/sys" "$r/tmp" "$r/etc" \
	    "$r/lib/modules" "$r/mux"
	cp /bin/busybox "$r/bin/busybox"
	ln -s busybox "$r/bin/sh"
	cp "$HERE/init" "$r/init"
	chmod 755 "$r/init"
	cp "$K"/modules/*.ko "$r/lib/modules/"
	# The kernel opens /dev/console before devtmpfs is mounted.
	mknod -m 600 "$r/dev/console" c 5 1 || die "mknod /dev/console (root?)"
	(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$img.tmp" &&
	    mv "$img.tmp" "$img" || die "cannot build $img"
	rm -rf "$r"
}

# No program interpreter: nothing to load at run time.
file_is_static() {
	! readelf -l "$1" 2>/dev/null | grep -q 'program interpreter'
}

# --- 3. the per-run archive: binaries, libraries, the run script --------
#
# muxd and the tools are static. The cmocka test binaries cannot be (Debian
# ships no libcmocka.a), so the shared libraries ldd names come along.
add_libs() {
	ldd "$1" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p' |
	while read -r lib; do
		[ -f "$r$lib" ] && continue
		mkdir -p "$r$(dirname "$lib")"
		cp -L "$lib" "$r$lib"
	done
}

run_image() {
	r=$W/run
	rm -rf "$r"
	mkdir -p "$r/mux/bin" "$r/mux/e2e"
	for t in muxd muxctl mux-loadgen mux-svm; do
		[ -x "$STATIC/$t" ] || die "missing $STATIC/$t (make static)"
		file_is_static "$STATIC/$t" || die "$STATIC/$t is not static"
		cp "$STATIC/$t" "$r/mux/bin/"
	done
	for n in $E2E_BINS; do
		[ -x "$B/e2e/$n" ] || die "missing $B/e2e/$n (make all)"
		cp "$B/e2e/$n" "$r/mux/e2e/"
		add_libs "$B/e2e/$n"
	done
	cp "$HERE/$GUEST_SCRIPT" "$r/mux/run"
	cp "$TESTS" "$r/mux/guest-tests"
	{
		echo "MUX_GUEST_WATCHDOG=$WATCHDOG"
		echo "export MUX_GUEST_MODE=$MODE"
		[ -z "${MUX_BENCH_SECONDS:-}" ] ||
		    echo "export MUX_BENCH_SECONDS=$MUX_BENCH_SECONDS"
		[ -z "${MUX_BENCH_REPS:-}" ] ||
		    echo "export MUX_BENCH_REPS=$MUX_BENCH_REPS"
	} >"$r/mux/env"
	(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$W/run.cpio.gz" ||
	    die "cannot build the per-run archive"
	cat "$W/base.cpio.gz" "$W/run.cpio.gz" >"$W/initrd.img"
	rm -rf "$r"
}

# --- 4. acceleration: TCG unless KVM is proven to work ------------------
#
# /dev/kvm here may be a paravirtual variant (kvm_pvm) on which a stock
# kernel dies with "KVM internal error" and QEMU pauses instead of exiting.
accel() {
	case "${MUX_VSOCK_ACCEL:-}" in
	tcg|kvm) echo "$MUX_VSOCK_ACCEL"; return ;;
	esac
	if [ -d /sys/module/kvm_pvm ] || [ ! -w /dev/kvm ]; then
		echo tcg
		return
	fi
	if [ ! -f "$W/kvm-probe" ]; then
		# A probe boot with an empty run: KVM counts only if it reports.
		r=$W/probe
		rm -rf "$r"
		mkdir -p "$r/mux"
		printf 'echo probe\nexit 0\n' >"$r/mux/run"
		echo "MUX_GUEST_WATCHDOG=40" >"$r/mux/env"
		(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$r.cpio.gz"
		cat "$W/base.cpio.gz" "$r.cpio.gz" >"$W/probe.img"
		rm -rf "$r" "$r.cpio.gz"
		if boot kvm 60 "$W/probe.img" "$W/probe" >/dev/null 2>&1 &&
		    tr -d '\r' <"$W/probe.results.log" | grep -q '^MUX-GUEST-EXIT 0'; then
			echo kvm >"$W/kvm-probe"
		else
			echo tcg >"$W/kvm-probe"
		fi
	fi
	cat "$W/kvm-probe"
}

# boot ACCEL SECONDS INITRD LOGPREFIX
boot() {
	rm -f "$4.console.log" "$4.results.log"
	timeout -k 5 "$2" qemu-system-x86_64 -accel "$1" -m 512 -smp 2 \
	    -nic none -kernel "$K/vmlinuz" -initrd "$3" \
	    -append "console=ttyS0 panic=-1 quiet" \
	    -serial "file:$4.console.log" -serial "file:$4.results.log" \
	    -monitor none -nographic -no-reboot </dev/null
}

# --- main ----------------------------------------------------------------
case "$MODE" in
test)
	GUEST_SCRIPT=guest-run.sh
	# Binaries named in the list, once each.
	[ -f "$TESTS" ] || die "$TESTS: no such list"
	E2E_BINS=$(sed -e 's/#.*//' "$TESTS" | awk 'NF { print $1 }' |
	    sort -u | tr '\n' ' ')
	;;
bench)
	GUEST_SCRIPT=guest-bench.sh
	E2E_BINS=""
	;;
*)
	echo "usage: tests/vsock/run.sh test|bench" >&2
	exit 2
	;;
esac

need qemu-system-x86_64 timeout cpio gzip ldd
mkdir -p "$W"
t0=$(date +%s)
kernel_fetch
base_image
run_image
t1=$(date +%s)
ACCEL=$(accel)
[ "$ACCEL" = kvm ] && kvm_note=" (probe passed)" || kvm_note=""
echo "vsock: booting $(cat "$K/ready") under QEMU ($ACCEL$kvm_note), mode $MODE, timeout ${TIMEOUT} s"
boot "$ACCEL" "$TIMEOUT" "$W/initrd.img" "$W/$MODE"
qrc=$?
t2=$(date +%s)
LOG=$W/$MODE.results.log
tr -d '\r' <"$LOG" 2>/dev/null >"$LOG.txt"
sed 's/^/  guest| /' "$LOG.txt" | grep -v 'MUX-GUEST-EXIT'
grc=$(sed -n 's/^MUX-GUEST-EXIT \([0-9]*\)$/\1/p' "$LOG.txt" | tail -n 1)
echo "vsock: image $((t1 - t0)) s, guest $((t2 - t1)) s (qemu status $qrc; console in $W/$MODE.console.log)"
if [ -z "$grc" ]; then
	echo "vsock: the guest never reported (qemu status $qrc); console tail:"
	{ tr -d '\r' <"$W/$MODE.console.log" 2>/dev/null; echo; } | tail -n 30 |
	    sed 's/^/  console| /'
	# Keep the guest's own count if it printed one, and add the failure.
	p=$(sed -n 's/^.*[^0-9]\([0-9][0-9]*\) passed, [0-9][0-9]* failed$/\1/p' "$LOG.txt" | tail -n 1)
	echo "vsock: ${p:-0} passed, 1 failed"
	exit 1
fi
if [ "$MODE" = test ]; then
	sum=$(grep -E '^vsock guest: [0-9]+ passed, [0-9]+ failed' "$LOG.txt" | tail -n 1)
	p=$(echo "$sum" | sed -n 's/^vsock guest: \([0-9]*\) passed.*/\1/p')
	f=$(echo "$sum" | sed -n 's/^.* \([0-9]*\) failed.*/\1/p')
	p=${p:-0}
	f=${f:-0}
	if [ "$grc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	echo "vsock: $p passed, $f failed"
	[ "$grc" -eq 0 ] && [ "$f" -eq 0 ] && [ "$p" -gt 0 ]
	exit $?
fi
exit "$grc"
