#!/bin/sh
# Throughput: as many events as mux-loadgen can offer (RATE, default 1e6/s,
# AGENTS VMs, default 8: each under the default 200,000 events/s per VM) through muxd to one mux-svm subscribed to everything,
# for DUR seconds; all three on this machine. Prints what was sent, what
# the SVM received, and whether anything was lost (gaps, holes).
# Usage: tools/bench-throughput.sh [BUILD_DIR]   (make bench-throughput)
set -u
B=${1:-build}
BIN="$B/bin"
RATE=${RATE:-1000000}
AGENTS=${AGENTS:-8}
DUR=${DUR:-5}
DIR=$(mktemp -d /tmp/mux-bench-tp.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
"$BIN/mux-svm" --listen 127.0.0.1:0 --port-file "$DIR/svm.port" --service-id av \
	--tls-off --json --quiet >"$DIR/svm.out" 2>&1 &
SVM=$!
PIDS="$PIDS $SVM"
i=0; while [ ! -s "$DIR/svm.port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
printf '[mux]\ntransport = unix\nagent_path = %s/agent.sock\ncontrol_path = %s/ctl.sock\nlog_level = warn\n[svm av]\naddress = 127.0.0.1:%s\nservice_id = av\ntls = off\n' \
	"$DIR" "$DIR" "$(cat "$DIR/svm.port")" >"$DIR/muxd.conf"
"$BIN/muxd" -d -f "$DIR/muxd.conf" 2>"$DIR/muxd.log" &
PIDS="$PIDS $!"
i=0
until "$BIN/muxctl" -s "$DIR/ctl.sock" --json svms 2>/dev/null | grep -q '"state":"up"'; do
	sleep 0.1; i=$((i + 1)); [ $i -lt 100 ] || { echo "bench-throughput: SVM not up"; exit 1; }
done
"$BIN/mux-loadgen" --connect "unix:$DIR/agent.sock" --agents "$AGENTS" --rate "$RATE" \
	--duration "$DUR" --json --quiet >"$DIR/lg.out" 2>&1
# Let the SVM catch up with what muxd holds before it is stopped.
i=0
until "$BIN/muxctl" -s "$DIR/ctl.sock" --json svms 2>/dev/null | grep -q '"in_flight":0,"lag":0,'; do
	sleep 0.2; i=$((i + 1)); [ $i -lt 300 ] || break
done
M=$("$BIN/muxctl" -s "$DIR/ctl.sock" metrics)
IN=$(echo "$M" | awk '/^mux_events_received_total/ {s += $2} END {print s}')
SHED=$(echo "$M" | awk '/^mux_events_dropped_total/ {s += $2} END {print s}')
kill -TERM "$SVM"
wait "$SVM"
num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | head -n 1; }
L=$(tail -n 1 "$DIR/lg.out")
S=$(grep '^{' "$DIR/svm.out" | tail -n 1)
echo "bench-throughput: $AGENTS agents offering $RATE events/s for $DUR s"
echo "  sent      $(echo "$L" | num sent) events, $(echo "$L" | num events_per_sec) events/s"
echo "  muxd      $IN events took a seq (the agents' plus its own VM events), $SHED shed by per-VM limits"
echo "  received  $(echo "$S" | num received) at the SVM, $(echo "$S" | num events_per_sec) events/s"
echo "  lost      gaps $(echo "$S" | num gaps), holes $(echo "$S" | num holes)"
