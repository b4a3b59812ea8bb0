# Sourced by tools/bench-*.sh (set BIN first): a scratch folder, one
# mux-svm, muxd's configuration, and everything started stopped by PID at
# the end, also on Ctrl-C.

# bench_init NAME: the scratch folder ($DIR) and the cleanup.
bench_init() {
	DIR=$(mktemp -d "/tmp/mux-$1.XXXXXX")
	PIDS=""
	trap bench_cleanup EXIT INT TERM
}

bench_cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	rm -rf "$DIR"
}

# bench_svm [ARG ...]: mux-svm (service av, plain TCP) on a port the kernel
# picks; sets SVM (its PID) and SVM_PORT.
bench_svm() {
	"$BIN/mux-svm" --listen 127.0.0.1:0 --port-file "$DIR/svm.port" \
		--service-id av --tls-off --json --quiet "$@" >"$DIR/svm.out" 2>&1 &
	SVM=$!
	PIDS="$PIDS $SVM"
	i=0
	while [ ! -s "$DIR/svm.port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	SVM_PORT=$(cat "$DIR/svm.port")
}

# bench_conf [INI]: $DIR/muxd.conf on the unix transport, INI after the
# [mux] keys (more [mux] keys, or other sections), then the SVM as [svm av].
bench_conf() {
	printf '[mux]\ntransport = unix\nagent_path = %s/agent.sock\ncontrol_path = %s/ctl.sock\n%b[svm av]\naddress = 127.0.0.1:%s\nservice_id = av\ntls = off\n' \
		"$DIR" "$DIR" "${1:-}" "$SVM_PORT" >"$DIR/muxd.conf"
}

# bench_wait_up NAME: until muxd has registered the SVM (30 s at most:
# muxd may run under valgrind).
bench_wait_up() {
	i=0
	until "$BIN/muxctl" -s "$DIR/ctl.sock" --json svms 2>/dev/null | grep -q '"state":"up"'; do
		sleep 0.2; i=$((i + 1))
		[ $i -lt 150 ] || { echo "$1: SVM not up"; exit 1; }
	done
}

# num KEY: the number after "KEY": in the JSON on stdin.
num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | head -n 1; }
