#!/bin/sh
# The packaging tests: tests/vib/run.sh BUILD_DIR [STATIC_BIN_DIR]
#
# Needs BUILD_DIR/bin (mux-vibcheck, mux-svm, mux-loadgen; `make`) and the
# static muxd and muxctl (`make static`, build/static/bin). Builds VIBs and
# bundles in a scratch folder with vib/mkvib.sh and vib/mkbundle.sh (what
# `make vib` and `make bundle` run), and checks:
#   - the VIB passes mux-vibcheck; two builds are byte-identical, also from
#     a copy of the sources built from scratch in another folder
#   - broken copies (member order, long member name, checksums, missing
#     gunzip checksum, size, file list both ways, element order, missing
#     element, modes, dynamic binary, owner, missing folder entry, pax
#     header, gzip name, not ar, truncated) are each rejected with a
#     message naming the fault
#   - signing with a test CA: good, chain checked, wrong CA, tampered
#     descriptor, reproducible; unsigned with acceptance partner
#   - the offline bundle's structure and consistency (check_bundle.py)
#   - the init script for real (tests/vib/init.sh)
#   - the Linux install (DESTDIR, PREFIX), the systemd unit
# One line per check, then "vib (BUILD_DIR): N passed, N failed"; exit 1
# when anything failed. KEEP=1 keeps the scratch folder.
set -u
B=${1:?usage: run.sh BUILD_DIR [STATIC_BIN_DIR]}
STATIC=${2:-build/static/bin}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP" || exit 1
BIN=$TOP/$B/bin
case $B in /*) BIN=$B/bin ;; esac
case $STATIC in /*) ;; *) STATIC=$TOP/$STATIC ;; esac
VC=$BIN/mux-vibcheck
T=$(mktemp -d /tmp/mux-vib.XXXXXX)
START=$(date +%s)
pass=0
fail=0
bad=""
export LC_ALL=C TZ=UTC

ok() {
	pass=$((pass + 1))
	printf 'vib: %s: ok\n' "$1"
}

no() {
	fail=$((fail + 1))
	bad="$bad|$1"
	printf 'vib: %s: FAILED\n' "$1"
	printf '%s\n' "$2" | tail -n 25 | sed 's/^/    /'
}

. "$TOP/tests/vib/init.sh"

cleanup() {
	init_cleanup
	if [ "${KEEP:-0}" = 1 ]; then
		echo "vib: scratch folder kept: $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for f in "$VC" "$BIN/mux-svm" "$BIN/mux-loadgen" "$STATIC/muxd" "$STATIC/muxctl"; do
	if [ ! -x "$f" ]; then
		echo "vib: $f is missing (make all static)"
		echo "vib ($B): 0 passed, 1 failed"
		exit 1
	fi
done

# expect_reject NAME VIB PATTERN [MUX-VIBCHECK OPTIONS]
expect_reject() {
	n=$1
	v=$2
	pat=$3
	shift 3
	"$VC" "$@" "$v" >"$T/vc.out" 2>&1
	rc=$?
	if [ "$rc" -ne 1 ]; then
		no "reject: $n" "mux-vibcheck exited $rc, expected 1: $(cat "$T/vc.out")"
	elif ! grep -q -- "$pat" "$T/vc.out"; then
		no "reject: $n" "no message matching '$pat': $(cat "$T/vc.out")"
	else
		ok "reject: $n: $(grep -- "$pat" "$T/vc.out" | head -n 1 |
		    sed 's/^mux-vibcheck: [^:]*: //')"
	fi
}

expect_good() {
	n=$1
	shift
	if "$VC" "$@" >"$T/vc.out" 2>&1; then
		ok "$n: $(tail -n 1 "$T/vc.out" | sed 's/^[^:]*: //')"
	else
		no "$n" "$(cat "$T/vc.out")"
	fi
}

# A VIB taken apart (descriptor.xml, sig.pkcs7, payload1) and put together.
unpack() {
	rm -rf "$2"
	mkdir -p "$2"
	(cd "$2" && ar x "$1")
}

pack() {
	d=$1
	out=$2
	shift 2
	rm -f "$out"
	(cd "$d" && ar rcD "$out" "$@")
}

# Size and checksums of payload1 written into descriptor.xml.
fix_sums() {
	size=$(wc -c <"$1/payload1" | tr -d ' ')
	s=$(sha256sum <"$1/payload1" | cut -c1-64)
	g=$(gzip -dc "$1/payload1" | sha256sum | cut -c1-64)
	g1=$(gzip -dc "$1/payload1" | sha1sum | cut -c1-40)
	sed -i -e "s|size=\"[0-9]*\"|size=\"$size\"|" \
	    -e "s|\(checksum-type=\"sha-256\">\)[0-9a-f]*<|\1$s<|" \
	    -e "s|\(verify-process=\"gunzip\">\)[0-9a-f]\{64\}<|\1$g<|" \
	    -e "s|\(verify-process=\"gunzip\">\)[0-9a-f]\{40\}<|\1$g1<|" \
	    "$1/descriptor.xml"
}

# mkpayload STAGE OUT [TAR OPTIONS]: payload1 from a staging folder.
mkpayload() {
	st=$1
	out=$2
	shift 2
	(cd "$st" && find . -mindepth 1 | sed 's|^\./||' | sort) >"$T/list"
	tar --format=ustar --numeric-owner --owner=0 --group=0 --mtime=@0 \
	    --no-recursion "$@" -C "$st" -cf - -T "$T/list" | gzip -n >"$out"
}

# broken NAME PATTERN: pack $T/x (after the caller changed it) and expect
# mux-vibcheck to reject it with PATTERN.
broken() {
	pack "$T/x" "$T/broken.vib" descriptor.xml sig.pkcs7 payload1
	expect_reject "$1" "$T/broken.vib" "$2"
}

fresh() {
	unpack "$VIB" "$T/x"
}

# flip FILE PREFIX: change the first hex digit of the checksum after PREFIX.
flip() {
	old=$(grep -o "$2[0-9a-f]*" "$1" | head -n 1 | sed "s|^$2||")
	new=$(echo "$old" | sed 's/^0/x/; s/^[1-9a-f]/0/; s/^x/1/')
	sed -i "s|$2$old<|$2$new<|" "$1"
}

# A copy of the good payload, staged, for the payload faults.
restage() {
	rm -rf "$T/st"
	mkdir -p "$T/st"
	gzip -dc "$T/good/payload1" | tar -xf - -C "$T/st"
}

#
# 1. The VIB and its reproducibility.
#
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export MUX_BUILD=${MUX_BUILD:-$(git rev-list --count HEAD 2>/dev/null || echo 0)}
if VIB=$(sh vib/mkvib.sh "$STATIC" "$T/a" 2>"$T/mkvib.err" | tail -n 1) && [ -f "$VIB" ]; then
	ok "build: $(basename "$VIB")"
else
	no "build" "$(cat "$T/mkvib.err")"
	echo "vib ($B): $pass passed, $fail failed"
	exit 1
fi
expect_good "verify the built VIB" -v "$VIB"
grep -q "opt/mux/bin/muxd: static x86-64 ELF" "$T/vc.out" &&
    grep -q "opt/mux/bin/muxctl: static x86-64 ELF" "$T/vc.out" &&
    ok "muxd and muxctl in the VIB are static x86-64" ||
    no "static binaries" "$(cat "$T/vc.out")"
case $(basename "$VIB") in
muxd-"$(cat VERSION)"-"$MUX_BUILD".[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f].vib)
	ok "version is VERSION-BUILD.PAYLOADHASH ($(basename "$VIB" .vib))" ;;
*)	no "version" "unexpected name $(basename "$VIB")" ;;
esac
VIB2=$(sh vib/mkvib.sh "$STATIC" "$T/b" 2>&1 | tail -n 1)
cmp -s "$VIB" "$VIB2" && ok "two builds are byte-identical" ||
    no "reproducible" "$VIB and $VIB2 differ"

# The same sources in another folder, built from scratch.
mkdir -p "$T/src"
tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$T/src"
if make -C "$T/src" --no-print-directory -j2 B=build/static STATIC=1 \
    build/static/bin/muxd build/static/bin/muxctl >"$T/rebuild.log" 2>&1; then
	VIB3=$(sh "$T/src/vib/mkvib.sh" "$T/src/build/static/bin" "$T/c" 2>&1 | tail -n 1)
	cmp -s "$VIB" "$VIB3" &&
	    ok "a from-scratch build of a copy in another folder is byte-identical" ||
	    no "reproducible elsewhere" "$VIB and $VIB3 differ"
else
	no "rebuild in a copy" "$(grep -v 'getaddrinfo\|statically linked' "$T/rebuild.log")"
fi
rm -rf "$T/src"

#
# 2. Broken VIBs.
#
unpack "$VIB" "$T/good"
fresh
pack "$T/x" "$T/broken.vib" sig.pkcs7 descriptor.xml payload1
expect_reject "wrong member order" "$T/broken.vib" "member order: member 1 is 'sig.pkcs7'"
pack "$T/x" "$T/broken.vib" descriptor.xml payload1 sig.pkcs7
expect_reject "payload before sig.pkcs7" "$T/broken.vib" "member order: member 2 is 'payload1'"

fresh
mv "$T/x/payload1" "$T/x/payload-number-1"
sed -i 's|name="payload1"|name="payload-number-1"|' "$T/x/descriptor.xml"
pack "$T/x" "$T/broken.vib" descriptor.xml sig.pkcs7 payload-number-1
expect_reject "member name longer than 15" "$T/broken.vib" "at most 15 characters"

fresh
flip "$T/x/descriptor.xml" 'checksum-type="sha-256">'
broken "bad sha-256 of the payload" "checksum: sha-256 of payload 'payload1' as stored"
fresh
flip "$T/x/descriptor.xml" 'checksum-type="sha-1" verify-process="gunzip">'
broken "bad gunzip sha-1" "checksum: gunzip sha-1 of payload 'payload1'"
fresh
sed -i '/checksum-type="sha-256" verify-process="gunzip"/d' "$T/x/descriptor.xml"
broken "missing gunzip sha-256" "missing gunzip checksum sha-256"
fresh
sed -i 's|size="[0-9]*"|size="12345"|' "$T/x/descriptor.xml"
broken "payload size" "size: payload 'payload1' is [0-9]* bytes, descriptor.xml says 12345"
fresh
sed -i '\|<file>opt/mux/bin/muxctl</file>|d' "$T/x/descriptor.xml"
broken "file list lacks a payload file" "file list: 'opt/mux/bin/muxctl' of payload 'payload1' is not in descriptor.xml's file list"
fresh
sed -i 's|<file>opt/mux/bin/muxd</file>|&\n    <file>opt/mux/bin/muxd-extra</file>|' "$T/x/descriptor.xml"
broken "file list names a file not in the payload" "file list: 'opt/mux/bin/muxd-extra' is in descriptor.xml but in no payload"
fresh
sed -i 's|<file>etc/init.d/muxd</file>|<file>/etc/init.d/muxd</file>|' "$T/x/descriptor.xml"
broken "file list with a leading /" "is not a relative file path"
fresh
awk '/<name>/ { n = $0; next } /<version>/ { print; print n; next } { print }' \
    "$T/good/descriptor.xml" >"$T/x/descriptor.xml"
broken "descriptor element order" "element order: <name> must come before <version>"
fresh
sed -i '/<overlay>/d' "$T/x/descriptor.xml"
broken "missing required element" "missing required element <overlay>"
fresh
sed -i 's|<vib version="5.0">|<vib version="4.0">|' "$T/x/descriptor.xml"
broken "vib version" 'expected version="5.0"'
fresh
sed -i '/esx-version/d' "$T/x/descriptor.xml"
broken "no esx-version dependency" "no <depends><constraint name=\"esx-version\""
fresh
sed -i 's|<acceptance-level>community<|<acceptance-level>partner<|' "$T/x/descriptor.xml"
broken "unsigned partner VIB" "only community VIBs may be unsigned"
fresh
sed -i 's|</vib>|<vib>|' "$T/x/descriptor.xml"
broken "descriptor not well-formed" "descriptor.xml: not well-formed XML"

restage
chmod 0644 "$T/st/etc/mux/muxd.conf"
fresh
mkpayload "$T/st" "$T/x/payload1"
fix_sums "$T/x"
broken "config not sticky" "mode: etc/mux/muxd.conf is 0644, expected 1644"
restage
chmod 0644 "$T/st/etc/init.d/muxd"
fresh
mkpayload "$T/st" "$T/x/payload1"
fix_sums "$T/x"
broken "init script not executable" "mode: init script etc/init.d/muxd is 0644"
restage
cp "$BIN/muxctl" "$T/st/opt/mux/bin/muxctl"
fresh
mkpayload "$T/st" "$T/x/payload1"
fix_sums "$T/x"
broken "dynamically linked binary" "static: payload 'payload1': opt/mux/bin/muxctl: dynamically linked: program interpreter (PT_INTERP)"
restage
fresh
mkpayload "$T/st" "$T/x/payload1" --owner=1000 --group=100
fix_sums "$T/x"
broken "owner not 0:0" "is owned by 1000:100, expected 0:0"
restage
fresh
(cd "$T/st" && find . -mindepth 1 | sed 's|^\./||' | sort | grep -vx 'opt/mux') >"$T/list"
tar --format=ustar --numeric-owner --owner=0 --group=0 --mtime=@0 --no-recursion \
    -C "$T/st" -cf - -T "$T/list" | gzip -n >"$T/x/payload1"
fix_sums "$T/x"
broken "folder without its own entry" "directory 'opt/mux' (of 'opt/mux/bin') has no entry of its own"
restage
fresh
(cd "$T/st" && find . -mindepth 1 | sed 's|^\./||' | sort) >"$T/list"
tar --format=pax --numeric-owner --owner=0 --group=0 --mtime=@0 --no-recursion \
    --pax-option=comment=pax \
    -C "$T/st" -cf - -T "$T/list" | gzip -n >"$T/x/payload1"
fix_sums "$T/x"
broken "pax headers" "pax header in the tar"
fresh
gzip -dc "$T/good/payload1" >"$T/payload.tar"
touch -d @1700000000 "$T/payload.tar"
gzip -c "$T/payload.tar" >"$T/x/payload1"
fix_sums "$T/x"
broken "gzip without -n" "gzip header carries a file name or a time"
printf 'not a VIB\n' >"$T/broken.vib"
expect_reject "not an ar archive" "$T/broken.vib" "ar: bad magic"
head -c 5000 "$VIB" >"$T/broken.vib"
expect_reject "truncated VIB" "$T/broken.vib" "truncated"
expect_reject "unsigned VIB with --require-signature" "$VIB" \
    "sig.pkcs7 is empty and --require-signature" --require-signature

#
# 3. Signing with a test CA.
#
mkdir -p "$T/pki"
(
	cd "$T/pki" || exit 1
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
	    -days 2 -subj "/CN=mux test CA" -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign" &&
	openssl req -newkey rsa:2048 -nodes -keyout signer.key -out signer.csr \
	    -subj "/CN=mux test VIB signer" &&
	printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >ext &&
	openssl x509 -req -in signer.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	    -days 2 -extfile ext -out signer.pem &&
	openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem \
	    -days 2 -subj "/CN=another CA"
) >"$T/pki.log" 2>&1 || no "test PKI" "$(cat "$T/pki.log")"
SVIB=$(VIB_KEY=$T/pki/signer.key VIB_CERT=$T/pki/signer.pem \
    sh vib/mkvib.sh "$STATIC" "$T/s" 2>"$T/mkvib.err" | tail -n 1)
if [ -f "$SVIB" ]; then
	expect_good "signed VIB verifies" "$SVIB"
	grep -q "signed by .*CN *= *mux test VIB signer" "$T/vc.out" ||
	    no "signed VIB signer" "$(cat "$T/vc.out")"
	expect_good "signed VIB, signer chain to the test CA" --ca "$T/pki/ca.pem" \
	    --require-signature "$SVIB"
	unpack "$SVIB" "$T/sx"
	if head -n 1 "$T/sx/sig.pkcs7" | grep -q 'BEGIN PKCS7' &&
	    openssl smime -verify -binary -inform PEM -in "$T/sx/sig.pkcs7" \
	    -content "$T/sx/descriptor.xml" -CAfile "$T/pki/ca.pem" -purpose any \
	    -out /dev/null >"$T/smime.out" 2>&1; then
		ok "openssl smime -verify agrees (detached PKCS#7, PEM)"
	else
		no "openssl smime -verify" "$(cat "$T/smime.out")"
	fi
	expect_reject "signed VIB, wrong CA" "$SVIB" "signature: sig.pkcs7 does not verify" \
	    --ca "$T/pki/other.pem"
	sed -i 's|<summary>muxd:|<summary>muxd (changed):|' "$T/sx/descriptor.xml"
	pack "$T/sx" "$T/tampered.vib" descriptor.xml sig.pkcs7 payload1
	expect_reject "tampered signed VIB" "$T/tampered.vib" \
	    "signature: sig.pkcs7 does not verify for descriptor.xml"
	unpack "$SVIB" "$T/sx"
	printf 'garbage' >"$T/sx/sig.pkcs7"
	pack "$T/sx" "$T/tampered.vib" descriptor.xml sig.pkcs7 payload1
	expect_reject "sig.pkcs7 not PKCS#7" "$T/tampered.vib" "not a PKCS#7/CMS structure"
	SVIB2=$(VIB_KEY=$T/pki/signer.key VIB_CERT=$T/pki/signer.pem \
	    sh vib/mkvib.sh "$STATIC" "$T/s2" 2>&1 | tail -n 1)
	cmp -s "$SVIB" "$SVIB2" && ok "two signed builds are byte-identical" ||
	    no "signed reproducible" "$SVIB and $SVIB2 differ"
else
	no "signed build" "$(cat "$T/mkvib.err")"
fi

#
# 4. The offline bundle.
#
if BUNDLE=$(sh vib/mkbundle.sh "$VIB" "$T/a" 2>"$T/bundle.err" | tail -n 1) &&
    [ -f "$BUNDLE" ]; then
	if python3 tests/vib/check_bundle.py "$BUNDLE" "$VIB" >"$T/cb.out" 2>&1; then
		ok "bundle structure and consistency: $(tail -n 1 "$T/cb.out")"
	else
		no "bundle check" "$(cat "$T/cb.out")"
	fi
	B2=$(sh vib/mkbundle.sh "$VIB" "$T/b" 2>&1 | tail -n 1)
	cmp -s "$BUNDLE" "$B2" && ok "two bundles of one VIB are byte-identical" ||
	    no "bundle reproducible" "$BUNDLE and $B2 differ"
	rm -rf "$T/bx"
	mkdir -p "$T/bx"
	(cd "$T/bx" && unzip -q "$BUNDLE") && expect_good "the bundle's VIB verifies" \
	    "$T/bx/vib20/muxd/$(unzip -Z1 "$BUNDLE" | grep '\.vib$' | sed 's|.*/||')"
else
	no "bundle build" "$(cat "$T/bundle.err")"
fi

#
# 5. The init script, for real.
#
init_test
init_cleanup

#
# 6. Linux: make install with DESTDIR and PREFIX, the systemd unit.
#
I=$T/inst
if DESTDIR=$I PREFIX=/usr sh vib/install-linux.sh "$BIN" >"$T/inst.out" 2>&1 &&
    [ -x "$I/usr/sbin/muxd" ] && [ -x "$I/usr/bin/muxctl" ] &&
    [ -f "$I/usr/lib/systemd/system/muxd.service" ] &&
    [ -f "$I/etc/mux/muxd.conf.example" ] && [ -f "$I/etc/mux/muxd.conf" ]; then
	ok "install: DESTDIR=... PREFIX=/usr: $(grep -c INSTALL "$T/inst.out") files"
else
	no "install" "$(cat "$T/inst.out"; find "$I" | sort)"
fi
U=$I/usr/lib/systemd/system/muxd.service
if grep -qx 'ExecStart=/usr/sbin/muxd -d -f /etc/mux/muxd.conf' "$U" &&
    grep -qx 'Restart=on-failure' "$U" &&
    grep -q '^RestrictAddressFamilies=.*AF_VSOCK' "$U" &&
    ! grep -q '^PrivateNetwork=\|^PrivateDevices=\|@SBINDIR@\|@SYSCONFDIR@' "$U"; then
	ok "unit: ExecStart with the installed paths, Restart=on-failure, AF_VSOCK allowed"
else
	no "unit" "$(cat "$U")"
fi
if command -v systemd-analyze >/dev/null 2>&1; then
	sed "s|/usr/sbin/muxd|$I/usr/sbin/muxd|" "$U" >"$T/muxd.service"
	if systemd-analyze verify "$T/muxd.service" >"$T/sa.out" 2>&1 &&
	    ! grep -q "muxd.service" "$T/sa.out"; then
		ok "unit: systemd-analyze verify is clean"
	else
		no "unit: systemd-analyze verify" "$(cat "$T/sa.out")"
	fi
fi
"$I/usr/sbin/muxd" -n -f "$I/etc/mux/muxd.conf" >/dev/null 2>&1 &&
    ok "install: the installed configuration parses" ||
    no "install: config" "$("$I/usr/sbin/muxd" -n -f "$I/etc/mux/muxd.conf" 2>&1)"
echo "# edited" >>"$I/etc/mux/muxd.conf"
DESTDIR=$I PREFIX=/usr sh vib/install-linux.sh "$BIN" >"$T/inst.out" 2>&1
grep -q "# edited" "$I/etc/mux/muxd.conf" && grep -q KEEP "$T/inst.out" &&
    ok "install: a second install keeps the operator's muxd.conf" ||
    no "install: keep config" "$(cat "$T/inst.out")"
if make --no-print-directory -s install B="$B" DESTDIR="$T/inst2" PREFIX=/opt/mux \
    >"$T/mi.out" 2>&1 && [ -x "$T/inst2/opt/mux/sbin/muxd" ] &&
    grep -qx 'ExecStart=/opt/mux/sbin/muxd -d -f /etc/mux/muxd.conf' \
    "$T/inst2/opt/mux/lib/systemd/system/muxd.service"; then
	ok "make install DESTDIR=... PREFIX=/opt/mux"
else
	no "make install" "$(cat "$T/mi.out")"
fi

echo "vib: $(($(date +%s) - START)) s"
echo "vib ($B): $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "vib: failing: $bad" | tr '|' '\n' | sed '2,$s/^/  /'; exit 1; }
exit 0
