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
. "$(dirname "$0")/bench-lib.sh"
bench_init bench-tp
bench_svm
bench_conf "log_level = warn\n"
"$BIN/muxd" -d -f "$DIR/muxd.conf" 2>"$DIR/muxd.log" &
PIDS="$PIDS $!"
bench_wait_up bench-throughput
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
L=$(tail -n 1 "$DIR/lg.out")
S=$(grep '^{' "$DIR/svm.out" | tail -n 1)
echo "bench-throughput: $AGENTS agents offering $RATE events/s for $DUR s"
echo "  sent      $(echo "$L" | num sent) events, $(echo "$L" | num events_per_sec) events/s"
echo "  muxd      $IN events took a seq (the agents' plus its own VM events), $SHED shed by per-VM limits"
echo "  received  $(echo "$S" | num received) at the SVM, $(echo "$S" | num events_per_sec) events/s"
echo "  lost      gaps $(echo "$S" | num gaps), holes $(echo "$S" | num holes)"
