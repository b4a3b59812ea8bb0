#!/bin/sh
# Runs inside the vsock guest (as /mux/run) for `make bench-vsock`: the same
# load over the unix backend and over vsock, muxd fanning out to one
# mux-svm on TCP loopback. Prints one line per run and a table. Emulated
# (TCG) figures are only comparable to each other.
set -u
B=/mux/bin
D=/tmp/bench
DUR=${MUX_BENCH_SECONDS:-5}
REPS=${MUX_BENCH_REPS:-5}
AGENTS=4
port=5500
fail=0

num() {		# num KEY JSON
	echo "$2" | sed -n "s/.*\"$1\":\([-0-9.]*\).*/\1/p" | head -n 1
}

# run TRANSPORT RATE REPLY_SHARE -> sets line
run() {
	t=$1 rate=$2 share=$3
	rm -rf "$D"
	mkdir -p "$D"
	port=$((port + 1))
	"$B/mux-svm" --listen 127.0.0.1:0 --port-file "$D/svm.port" \
	    --service-id bench --tls-off --json --quiet >"$D/svm.out" 2>"$D/svm.err" &
	svm=$!
	i=0
	while [ ! -s "$D/svm.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	if [ "$t" = vsock ]; then
		tr="transport = vsock
agent_port = $port"
		conn="vsock:1:$port"
	else
		tr="transport = unix
agent_path = $D/agent.sock"
		conn="unix:$D/agent.sock"
	fi
	cat >"$D/muxd.conf" <<EOC
[mux]
$tr
control_path = $D/ctl.sock
log_level = warn
[limits]
agent_max_connections_per_vm = 64
[svm bench]
address = 127.0.0.1:$(cat "$D/svm.port")
service_id = bench
tls = off
EOC
	"$B/muxd" -d -f "$D/muxd.conf" 2>"$D/muxd.err" &
	muxd=$!
	i=0
	while [ ! -S "$D/ctl.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	i=0
	until "$B/muxctl" -s "$D/ctl.sock" --json svms 2>/dev/null |
	    grep -q '"state":"up"'; do
		[ $i -lt 100 ] || break
		sleep 0.1
		i=$((i + 1))
	done
	"$B/mux-loadgen" --connect "$conn" --agents $AGENTS --rate "$rate" \
	    --duration "$DUR" --reply-share "$share" --json --quiet \
	    >"$D/lg.out" 2>"$D/lg.err"
	lrc=$?
	sleep 2		# let the SVM drain
	kill "$svm"
	wait "$svm"
	kill "$muxd"
	wait "$muxd"
	lg=$(grep '^{' "$D/lg.out" | tail -n 1)
	sv=$(grep '^{' "$D/svm.out" | tail -n 1)
	eps=$(num events_per_sec "$lg")
	recv=$(num received "$sv")
	sent=$(num sent "$lg")
	p50=$(num latency_us_p50 "$lg")
	p99=$(num latency_us_p99 "$lg")
	skips=$(num backpressure_skips "$lg")
	if [ "$lrc" -ne 0 ] || [ -z "$eps" ]; then
		echo "bench: $t rate $rate: mux-loadgen failed ($lrc)"
		tail -n 5 "$D/lg.err" "$D/muxd.err"
		fail=$((fail + 1))
	fi
	# Every event the agents sent, plus connected/disconnected per agent.
	if [ "${recv:-0}" -ne $(( ${sent:-0} + 2 * AGENTS )) ]; then
		echo "bench: $t rate $rate: the SVM received ${recv:-0} of $(( ${sent:-0} + 2 * AGENTS ))"
		fail=$((fail + 1))
	fi
	line="$t $rate $share ${eps:-0} ${sent:-0} ${recv:-0} ${p50:--} ${p99:--} ${skips:-0}"
	echo "bench: $line"
}

echo "bench: $AGENTS agents (one VM over vsock, $AGENTS VMs over unix), $DUR s per run, 1 SVM"
echo "bench: columns: transport offered_rate reply_share events_per_s sent svm_received p50_us p99_us backpressure_skips"
: >/tmp/bench.rows
r=0
while [ $r -lt "$REPS" ]; do
	for t in unix vsock; do
		run $t 1000000 0
		echo "$line" >>/tmp/bench.rows
	done
	r=$((r + 1))
done
for t in unix vsock; do
	run $t 2000 0.2
	echo "$line" >>/tmp/bench.rows
done
echo "bench: summary (throughput: median, min-max of $REPS runs at an unbounded offered rate)"
for t in unix vsock; do
	med=$(awk -v t=$t '$1 == t && $2 == 1000000 { print $4 }' /tmp/bench.rows |
	    sort -n | awk '{ v[NR] = $1 } END {
		printf "%.0f (%.0f-%.0f)", v[int((NR + 1) / 2)], v[1], v[NR] }')
	lat=$(awk -v t=$t '$1 == t && $2 == 2000 { print "p50 " $7 " us, p99 " $8 " us" }' /tmp/bench.rows)
	echo "bench: $t: $med events/s; verdict latency at 2000 events/s: $lat"
done
[ "$fail" -eq 0 ]
