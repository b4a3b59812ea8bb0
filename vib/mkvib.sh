#!/bin/sh
# Build the ESXi VIB: vib/mkvib.sh BIN_DIR OUT_DIR
#
# BIN_DIR holds the static muxd and muxctl (make static). Stages the payload
# of PRODUCT.md's file table, packs it (ustar, owner 0:0, sorted, one fixed
# mtime, gzip -n), writes descriptor.xml from vib/descriptor.xml.in with the
# payload's size and checksums, signs it when a key is given, and packs
# descriptor.xml, sig.pkcs7 and payload1 with `ar rcD`. Prints the path of
# OUT_DIR/NAME-VERSION.vib on the last line.
#
# Environment:
#   SOURCE_DATE_EPOCH  mtime of every payload entry and the release date
#                      (default: the time of the last commit, else 0)
#   MUX_BUILD          build number (default: commits in HEAD, else 0)
#   VIB_KEY, VIB_CERT  sign descriptor.xml (PEM key and certificate): a
#                      detached PKCS#7 signature in sig.pkcs7; else empty
#   VIB_ACCEPTANCE     acceptance level (default community)
#
# The version is VERSION-BUILD.HASH: VERSION from the file VERSION (the one
# source), BUILD orders builds (commit count), HASH is the first 10 hex
# digits of the sha-256 of the uncompressed payload, so a different payload
# always has a different version (ESXi refuses the same VIB ID with another
# payload) and the same commit always gives the same bytes.
set -eu
export LC_ALL=C TZ=UTC
umask 022

BIN=${1:?usage: mkvib.sh BIN_DIR OUT_DIR}
OUT=${2:?usage: mkvib.sh BIN_DIR OUT_DIR}
TOP=$(cd "$(dirname "$0")/.." && pwd)
NAME=muxd
VENDOR=openmux

die() {
	echo "mkvib: $*" >&2
	exit 1
}

for f in muxd muxctl; do
	[ -x "$BIN/$f" ] || die "$BIN/$f is missing (make static)"
done
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$TOP" log -1 --format=%ct 2>/dev/null || echo 0)
fi
if [ -z "${MUX_BUILD:-}" ]; then
	MUX_BUILD=$(git -C "$TOP" rev-list --count HEAD 2>/dev/null || echo 0)
fi
case $SOURCE_DATE_EPOCH$MUX_BUILD in
*[!0-9]*) die "SOURCE_DATE_EPOCH and MUX_BUILD must be numbers" ;;
esac
UPSTREAM=$(cat "$TOP/VERSION")
case $UPSTREAM in
'' | *[!0-9A-Za-z.]*) die "VERSION '$UPSTREAM': only letters, digits, dots" ;;
esac
ACCEPTANCE=${VIB_ACCEPTANCE:-community}
if [ -n "${VIB_KEY:-}${VIB_CERT:-}" ]; then
	[ -r "${VIB_KEY:-}" ] && [ -r "${VIB_CERT:-}" ] ||
	    die "VIB_KEY and VIB_CERT must both name readable files"
fi

# The shipped configuration must parse (muxd -n only reads the file).
"$BIN/muxd" -n -f "$TOP/vib/muxd.conf" >/dev/null ||
    die "vib/muxd.conf does not parse"

mkdir -p "$OUT"
W=$(mktemp -d "$OUT/.mkvib.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM
S=$W/stage
mkdir -p "$S/etc/init.d" "$S/etc/mux" "$S/etc/vmware/firewall" "$S/opt/mux/bin"
# Debug sections and the build-id note depend on the folder the tree was
# built in; without them the same commit gives the same bytes anywhere.
for f in muxd muxctl; do
	strip --strip-debug --remove-section=.note.gnu.build-id \
	    -o "$S/opt/mux/bin/$f" "$BIN/$f"
	chmod 0755 "$S/opt/mux/bin/$f"
done
cp "$TOP/vib/muxd.init" "$S/etc/init.d/muxd"
chmod 0755 "$S/etc/init.d/muxd"
cp "$TOP/vib/muxd.conf" "$S/etc/mux/muxd.conf"
chmod 1644 "$S/etc/mux/muxd.conf"
cp "$TOP/vib/muxd.xml" "$S/etc/vmware/firewall/muxd.xml"
chmod 0444 "$S/etc/vmware/firewall/muxd.xml"
find "$S" -type d -exec chmod 0755 {} +

# Every directory its own entry, sorted, no "./".
(cd "$S" && find . -mindepth 1 | sed 's|^\./||' | sort) >"$W/list"
tar --format=ustar --numeric-owner --owner=0 --group=0 \
    --mtime="@$SOURCE_DATE_EPOCH" --no-recursion \
    -C "$S" -cf "$W/payload.tar" -T "$W/list"
gzip -n -9 -c "$W/payload.tar" >"$W/payload1"

SIZE=$(wc -c <"$W/payload1" | tr -d ' ')
SHA256=$(sha256sum "$W/payload1" | cut -d' ' -f1)
SHA256_GUNZIP=$(sha256sum "$W/payload.tar" | cut -d' ' -f1)
SHA1_GUNZIP=$(sha1sum "$W/payload.tar" | cut -d' ' -f1)
VERSION=$UPSTREAM-$MUX_BUILD.$(echo "$SHA256_GUNZIP" | cut -c1-10)
DATE=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%S)

(cd "$S" && find . -mindepth 1 ! -type d | sed 's|^\./||' | sort) |
    sed 's|.*|    <file>&</file>|' >"$W/files"
sed -e "s|@NAME@|$NAME|" -e "s|@VERSION@|$VERSION|" -e "s|@VENDOR@|$VENDOR|" \
    -e "s|@DATE@|$DATE|" -e "s|@ACCEPTANCE@|$ACCEPTANCE|" \
    -e "s|@SIZE@|$SIZE|" -e "s|@SHA256@|$SHA256|" \
    -e "s|@SHA256_GUNZIP@|$SHA256_GUNZIP|" -e "s|@SHA1_GUNZIP@|$SHA1_GUNZIP|" \
    -e "/@FILES@/{
r $W/files
d
}" "$TOP/vib/descriptor.xml.in" >"$W/descriptor.xml"

: >"$W/sig.pkcs7"
if [ -n "${VIB_KEY:-}" ]; then
	# -noattr: no signing time, so a signed build is reproducible too.
	openssl smime -sign -binary -noattr -md sha256 -in "$W/descriptor.xml" \
	    -signer "$VIB_CERT" -inkey "$VIB_KEY" -outform PEM \
	    -out "$W/sig.pkcs7" || die "signing failed"
fi

VIB=$OUT/$NAME-$VERSION.vib
(cd "$W" && ar rcD vib.tmp descriptor.xml sig.pkcs7 payload1)
mv "$W/vib.tmp" "$VIB"
echo "$VIB"
