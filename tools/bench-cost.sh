#!/bin/sh
# muxd's cost per event in CPU instructions, repeatable whatever else the
# machine does: muxd runs under `valgrind --tool=callgrind` (all threads
# counted) twice, for N1 and N2 events from mux-loadgen to one SVM that
# gets them all (and, with VERDICTS=1, answers every reply_expected one);
# the cost per event is (I2 - I1) / (E2 - E1), so start-up and shutdown
# cancel out. Usage: tools/bench-cost.sh [BUILD_DIR]   (make bench-cost)
# Env: N1 (default 20000), N2 (default 60000), VERDICTS (0 or 1, default 1).
set -u
B=${1:-build}
BIN="$B/bin"
N1=${N1:-20000}
N2=${N2:-60000}
VERDICTS=${VERDICTS:-1}
RATE=2000	# events/s: what muxd keeps up with under callgrind
. "$(dirname "$0")/bench-lib.sh"
bench_init bench-cost
command -v valgrind >/dev/null || { echo "bench-cost: valgrind missing (apt-get install valgrind)"; exit 1; }

vflag=""
[ "$VERDICTS" = 1 ] && vflag="--verdicts"
bench_svm $vflag

# One run: N events; prints "instructions events".
run() {
	n=$1
	rm -f "$DIR/ctl.sock" "$DIR/cg.out"
	bench_conf "log_level = warn\n"
	valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.out" \
		"$BIN/muxd" -d -f "$DIR/muxd.conf" 2>"$DIR/vg.log" &
	vg=$!
	bench_wait_up bench-cost
	"$BIN/mux-loadgen" --connect "unix:$DIR/agent.sock" --agents 4 --rate $RATE \
		--duration $((n / RATE)) --reply-share 0.1 --json --quiet >"$DIR/lg.out" 2>&1
	sleep 2
	ev=$("$BIN/muxctl" -s "$DIR/ctl.sock" metrics | awk '/^mux_events_received_total/ {s += $2} END {print s}')
	kill -TERM "$vg"
	wait "$vg"
	ir=$(callgrind_annotate "$DIR/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
	echo "$ir $ev"
}

set -- $(run "$N1")
I1=$1; E1=$2
set -- $(run "$N2")
I2=$1; E2=$2
echo "bench-cost: run 1: $E1 events, $I1 instructions; run 2: $E2 events, $I2 instructions"
echo "bench-cost: muxd cost per event (ingest, ring, fan-out to 1 SVM$( [ "$VERDICTS" = 1 ] && echo ', verdicts for 10 %')): $(( (I2 - I1) / (E2 - E1) )) instructions"
