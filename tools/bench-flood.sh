#!/bin/sh
# Verdict latency of calm VMs with and without one VM flooding muxd.
# Usage: tools/bench-flood.sh [BUILD_DIR]   (make bench-flood)
# Env: RUNS (pairs, default 3), DUR (seconds per run, default 10),
#      FLOOD (the flooder's offered events/s, default 150000),
#      LIMIT (agent_max_events_per_sec, default 20000).
# One muxd, one mux-svm answering every verdict (allow). Each pair runs the
# 7 calm VMs (CIDs 4..10, 2000 events/s in all, 20 % waiting for a verdict)
# alone, then again while VM 3 floods from its own mux-loadgen process.
# Prints each run and the medians of the calm VMs' p50/p99 (microseconds).
set -u
B=${1:-build}
BIN="$B/bin"
RUNS=${RUNS:-3}
DUR=${DUR:-10}
FLOOD=${FLOOD:-150000}
LIMIT=${LIMIT:-20000}
. "$(dirname "$0")/bench-lib.sh"
bench_init bench-flood
bench_svm --verdicts --policy allow
bench_conf "[limits]\nagent_max_events_per_sec = $LIMIT\n"
"$BIN/muxd" -d -f "$DIR/muxd.conf" 2>"$DIR/muxd.log" &
PIDS="$PIDS $!"
bench_wait_up bench-flood

calm() {
	"$BIN/mux-loadgen" --connect "unix:$DIR/agent.sock" --agents 7 --first-cid 4 \
		--rate 2000 --reply-share 0.2 --duration "$DUR" --json --quiet | tail -n 1
}
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : int((v[NR/2]+v[NR/2+1])/2)}'; }

echo "bench-flood: $RUNS pairs of $DUR s; calm VMs 2000 ev/s, flooder $FLOOD ev/s, limit $LIMIT ev/s per VM"
printf '%-4s %-8s %10s %10s %10s %10s %12s\n' RUN MODE CALM_P50 CALM_P99 CALM_MAX VERDICTS FLOOD_SHED
n=1
while [ $n -le "$RUNS" ]; do
	J=$(calm)
	echo "$J" | num latency_us_p50 >>"$DIR/p50.alone"
	echo "$J" | num latency_us_p99 >>"$DIR/p99.alone"
	printf '%-4s %-8s %10s %10s %10s %10s %12s\n' "$n" alone "$(echo "$J" | num latency_us_p50)" \
		"$(echo "$J" | num latency_us_p99)" "$(echo "$J" | num latency_us_max)" \
		"$(echo "$J" | num verdicts)" -
	"$BIN/mux-loadgen" --connect "unix:$DIR/agent.sock" --agents 1 --first-cid 3 \
		--rate "$FLOOD" --reply-share 0.2 --duration $((DUR + 2)) --json --quiet \
		>"$DIR/flood.out" 2>&1 &
	FL=$!
	sleep 1
	J=$(calm)
	wait "$FL"
	F=$(tail -n 1 "$DIR/flood.out")
	echo "$J" | num latency_us_p50 >>"$DIR/p50.flood"
	echo "$J" | num latency_us_p99 >>"$DIR/p99.flood"
	printf '%-4s %-8s %10s %10s %10s %10s %12s\n' "$n" flood "$(echo "$J" | num latency_us_p50)" \
		"$(echo "$J" | num latency_us_p99)" "$(echo "$J" | num latency_us_max)" \
		"$(echo "$J" | num verdicts)" "$(echo "$F" | sed -n 's/.*"flood":\([0-9]*\).*/\1/p' | head -n 1)"
	n=$((n + 1))
done
echo
echo "calm VMs' verdict latency, median of $RUNS runs (us):"
echo "  alone:          p50 $(median <"$DIR/p50.alone")  p99 $(median <"$DIR/p99.alone")"
echo "  with the flood: p50 $(median <"$DIR/p50.flood")  p99 $(median <"$DIR/p99.flood")"
echo "  muxd shed (rate): $("$BIN/muxctl" -s "$DIR/ctl.sock" metrics | sed -n 's/^mux_events_dropped_total{reason="rate"} //p') events"
