#!/bin/sh
# The demo: muxd + two reference SVMs + 16 simulated VMs, with a live view,
# then a summary. Usage: tools/demo.sh BUILD_DIR [SECONDS]
# Everything runs on this machine over the unix backend and loopback TCP;
# everything started here is stopped by PID at the end, even on Ctrl-C.
set -u
B=${1:-build}
SECS=${2:-${DEMO_SECONDS:-20}}
BIN="$B/bin"
DIR=$(mktemp -d /tmp/mux-demo.XXXXXX)
PIDS=""

stop_all() {
	for p in $PIDS; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null
	done
	PIDS=""
}
cleanup() {
	stop_all
	rm -rf "$DIR"
}
trap 'echo; echo "demo: interrupted, stopping everything"; cleanup; exit 130' INT TERM
trap cleanup EXIT


echo "demo: folder $DIR"
# The SVM link is TLS 1.3, mutual, as in production: a throwaway CA here.
sh "$(dirname "$0")/mkpki.sh" "$DIR/pki"
TLS="--cert $DIR/pki/svm.pem --key $DIR/pki/svm.key --ca $DIR/pki/ca.pem"
# The SVMs listen on ports the kernel picks and write them to a file. The
# antimalware SVM decides file opens and executions: it denies shell scripts in home folders.
"$BIN/mux-svm" --listen 127.0.0.1:0 --port-file "$DIR/svm1.port" $TLS \
	--service-id vendor.antimalware --verdicts --policy 'deny-path:/home/*.sh' \
	--json --quiet >"$DIR/svm1.out" 2>"$DIR/svm1.err" &
PIDS="$PIDS $!"
"$BIN/mux-svm" --listen 127.0.0.1:0 --port-file "$DIR/svm2.port" $TLS \
	--service-id vendor.idfw --classes network,vm --json --quiet \
	>"$DIR/svm2.out" 2>"$DIR/svm2.err" &
PIDS="$PIDS $!"
i=0
while { [ ! -s "$DIR/svm1.port" ] || [ ! -s "$DIR/svm2.port" ]; } && [ $i -lt 50 ]; do
	sleep 0.1; i=$((i + 1))
done
P1=$(cat "$DIR/svm1.port")
P2=$(cat "$DIR/svm2.port")
echo "demo: SVM 'antimalware' (all classes, decides verdicts: denies /home/*.sh) on 127.0.0.1:$P1,"
echo "      SVM 'firewall' (network, vm) on 127.0.0.1:$P2; both over mutual TLS 1.3"
# The host's VM map: CID, UUID (what mux-loadgen's agents claim), name.
cid=3
while [ $cid -le 18 ]; do
	printf '%d 6c676e00-0000-4000-8000-%012x vm-%02d-%s\n' "$cid" "$cid" $((cid - 2)) \
		"$(echo web db app mail | cut -d' ' -f$(( (cid % 4) + 1 )))"
	cid=$((cid + 1))
done >"$DIR/vm.map"
cat >"$DIR/muxd.conf" <<EOF
[mux]
transport = unix
vm_map = $DIR/vm.map
agent_path = $DIR/agent.sock
control_path = $DIR/control.sock
heartbeat_ms = 2000
[limits]
ring_bytes = 64M
[tls]
ca = $DIR/pki/ca.pem
cert = $DIR/pki/mux.pem
key = $DIR/pki/mux.key
[svm antimalware]
address = 127.0.0.1:$P1
service_id = vendor.antimalware
[svm firewall]
address = 127.0.0.1:$P2
service_id = vendor.idfw
EOF
"$BIN/muxd" -d -f "$DIR/muxd.conf" 2>"$DIR/muxd.log" &
MUXD=$!
PIDS="$PIDS $MUXD"
i=0
while [ ! -S "$DIR/control.sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
CTL="$BIN/muxctl -s $DIR/control.sock"
i=0
until [ "$($CTL --json svms 2>/dev/null | grep -o '"state":"up"' | wc -l)" -eq 2 ]; do
	sleep 0.1; i=$((i + 1))
	[ $i -lt 100 ] || { echo "demo: SVMs did not come up; see $DIR"; cat "$DIR/muxd.log"; exit 1; }
done

echo "demo: 16 VMs sending 20000 events/s for $SECS s (10% wait for a verdict)"
"$BIN/mux-loadgen" --connect "unix:$DIR/agent.sock" --agents 16 --rate 20000 \
	--duration "$SECS" --reply-share 0.1 --json --quiet >"$DIR/loadgen.out" 2>"$DIR/loadgen.err" &
LG=$!
PIDS="$PIDS $LG"

num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" | head -n 1; }
printf '%6s %10s %10s %12s %12s %16s %9s %9s\n' TIME IN/s OUT/s RECEIVED DELIVERED RING LAG-AM LAG-FW
t=0
while kill -0 "$LG" 2>/dev/null; do
	sleep 1
	t=$((t + 1))
	# Mid-run, the operator's view is kept for the end.
	[ "$t" -eq $(( (SECS + 1) / 2 )) ] && $CTL status >"$DIR/status-mid.txt" 2>&1
	S=$($CTL --json status 2>/dev/null) || continue
	V=$($CTL --json svms 2>/dev/null) || continue
	lag1=$(echo "$V" | sed 's/},{/}\n{/g' | grep '"antimalware"' | num lag)
	lag2=$(echo "$V" | sed 's/},{/}\n{/g' | grep '"firewall"' | num lag)
	printf '%5ss %10s %10s %12s %12s %9s/%-6s %9s %9s\n' "$t" \
		"$(echo "$S" | num events_in_per_s)" "$(echo "$S" | num events_out_per_s)" \
		"$(echo "$S" | num received)" "$(echo "$S" | num delivered)" \
		"$(( $(echo "$S" | num ring_bytes) / 1048576 ))MiB" \
		"$(( $(echo "$S" | num ring_bytes_max) / 1048576 ))MiB" \
		"${lag1:-?}" "${lag2:-?}"
done
wait "$LG"
LGRC=$?
sleep 1
echo
echo "demo: muxctl status, taken half way through"
sed 's/^/  /' "$DIR/status-mid.txt" 2>/dev/null
echo "demo: muxctl svms, at the end"
$CTL svms | sed 's/^/  /'
stop_all

LGJ=$(grep '^{' "$DIR/loadgen.out" | tail -n 1)
J1=$(grep '^{' "$DIR/svm1.out" | tail -n 1)
J2=$(grep '^{' "$DIR/svm2.out" | tail -n 1)
echo
echo "=== demo summary ==="
echo "events sent by 16 VMs:        $(echo "$LGJ" | num sent) ($(echo "$LGJ" | sed -n 's/.*"events_per_sec":\([0-9.]*\).*/\1/p') events/s)"
echo "verdicts received by agents:  $(echo "$LGJ" | num verdicts) of $(echo "$LGJ" | num reply_expected) expected ($(echo "$LGJ" | num allow) allow, $(echo "$LGJ" | num deny) deny), p50 $(echo "$LGJ" | num latency_us_p50) us, p99 $(echo "$LGJ" | num latency_us_p99) us"
echo "svm antimalware received:     $(echo "$J1" | num received) (gaps $(echo "$J1" | num gaps), gap events $(echo "$J1" | num gap_events), holes $(echo "$J1" | num holes))"
echo "svm firewall received:        $(echo "$J2" | num received) (gaps $(echo "$J2" | num gaps), gap events $(echo "$J2" | num gap_events))"
echo "errors:                       loadgen $(echo "$LGJ" | num errors), svm protocol $(echo "$J1" | num protocol_errors)/$(echo "$J2" | num protocol_errors)"
[ "$LGRC" -eq 0 ] && echo "demo: OK" || echo "demo: loadgen reported errors (see above)"
exit "$LGRC"
