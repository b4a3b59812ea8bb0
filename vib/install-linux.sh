#!/bin/sh
# Install muxd on a Linux host: vib/install-linux.sh BIN_DIR
# (`make install` runs it with BIN_DIR = build/bin.)
#
#   $SBINDIR/muxd                        the daemon
#   $BINDIR/muxctl, mux-svm, mux-loadgen the tools
#   $UNITDIR/muxd.service                the systemd unit, paths filled in
#   $SYSCONFDIR/mux/muxd.conf.example    the commented example
#   $SYSCONFDIR/mux/muxd.conf            the example, only if there is no
#                                        configuration yet (never replaced)
#
# Environment: DESTDIR (staging root, default none), PREFIX (/usr/local),
# BINDIR ($PREFIX/bin), SBINDIR ($PREFIX/sbin), SYSCONFDIR (/etc: the
# product's default is /etc/mux/muxd.conf), UNITDIR
# ($PREFIX/lib/systemd/system). Nothing is started or enabled: see
# docs/install.md.
set -eu
umask 022

BIN=${1:?usage: install-linux.sh BIN_DIR}
TOP=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
BINDIR=${BINDIR:-$PREFIX/bin}
SBINDIR=${SBINDIR:-$PREFIX/sbin}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}

for f in muxd muxctl; do
	[ -x "$BIN/$f" ] || { echo "install: $BIN/$f is missing (make)" >&2; exit 1; }
done
say() {
	echo "  INSTALL $1"
}

install -d -m 0755 "$DESTDIR$SBINDIR" "$DESTDIR$BINDIR" "$DESTDIR$UNITDIR"
install -d -m 0755 "$DESTDIR$SYSCONFDIR/mux"
install -m 0755 "$BIN/muxd" "$DESTDIR$SBINDIR/muxd"
say "$SBINDIR/muxd"
for f in muxctl mux-svm mux-loadgen; do
	[ -x "$BIN/$f" ] || continue
	install -m 0755 "$BIN/$f" "$DESTDIR$BINDIR/$f"
	say "$BINDIR/$f"
done
sed -e "s|@SBINDIR@|$SBINDIR|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" \
    "$TOP/vib/muxd.service" >"$DESTDIR$UNITDIR/muxd.service.tmp"
chmod 0644 "$DESTDIR$UNITDIR/muxd.service.tmp"
mv "$DESTDIR$UNITDIR/muxd.service.tmp" "$DESTDIR$UNITDIR/muxd.service"
say "$UNITDIR/muxd.service"
install -m 0644 "$TOP/docs/muxd.conf.example" \
    "$DESTDIR$SYSCONFDIR/mux/muxd.conf.example"
say "$SYSCONFDIR/mux/muxd.conf.example"
if [ -e "$DESTDIR$SYSCONFDIR/mux/muxd.conf" ]; then
	echo "  KEEP    $SYSCONFDIR/mux/muxd.conf (exists)"
else
	install -m 0644 "$TOP/docs/muxd.conf.example" \
	    "$DESTDIR$SYSCONFDIR/mux/muxd.conf"
	say "$SYSCONFDIR/mux/muxd.conf"
fi
