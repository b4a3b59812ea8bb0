# tests/vib/init.sh: the init script tested for real (sourced by run.sh).
#
# The VIB's payload is unpacked into a scratch root; vib/muxd.init runs
# under busybox sh with MUX_ROOT pointing there, a stand-in watchdog.sh
# that really supervises (tests/vib/watchdog.sh), stand-ins for esxcli and
# logger that write down what they were asked, and a configuration with
# transport = unix and every socket inside the scratch root: this machine's
# vsock belongs to its host, so nothing here binds or dials vsock. The
# static muxd from the VIB serves mux-loadgen agents and a mux-svm.

# The pid the init script's pid file names, when that process runs.
init_pid() {
	p=$(cat "$R/var/run/mux/muxd.pid" 2>/dev/null) || return 1
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
}

initd() {
	env MUX_ROOT="$R" MUX_SH="busybox sh" MUX_LOGGER="$R/testbin/logger" \
	    busybox sh "$R/etc/init.d/muxd" "$@"
}

# initd_expect NAME RC PATTERN ACTION...: exit status and output.
initd_expect() {
	n=$1
	want=$2
	pat=$3
	shift 3
	initd "$@" >"$T/initd.out" 2>&1
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		no "$n" "'$*' exited $rc, expected $want: $(cat "$T/initd.out")"
		return 1
	fi
	if ! tr '\n' ' ' <"$T/initd.out" | grep -q -- "$pat"; then
		no "$n" "'$*' said '$(cat "$T/initd.out")', expected '$pat'"
		return 1
	fi
	ok "$n ($(tr '\n' ' ' <"$T/initd.out"))"
}

# Wait up to $2 tenths of a second for command $1 to succeed.
wait_for() {
	i=0
	while ! eval "$1" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt "$2" ] || return 1
		sleep 0.1
	done
}

ctl() {
	"$R/opt/mux/bin/muxctl" -s "$R/var/run/mux/control.sock" "$@"
}

# loadgen NAME SECONDS: agents over the unix socket; prints "sent".
loadgen() {
	"$BIN/mux-loadgen" --connect "unix:$R/var/run/mux/agent.sock" \
	    --agents 4 --rate 2000 --duration "$2" --reply-share 0.1 \
	    --json --quiet >"$T/lg-$1.out" 2>"$T/lg-$1.err"
	lrc=$?
	j=$(grep '^{' "$T/lg-$1.out" | tail -n 1)
	sent=$(echo "$j" | num sent)
	errs=$(echo "$j" | num errors)
	if [ "$lrc" -ne 0 ] || [ "${errs:-1}" != 0 ] || [ "${sent:-0}" -eq 0 ]; then
		no "$1" "mux-loadgen exit $lrc, sent ${sent:-?}, errors ${errs:-?}: $(tail -n 5 "$T/lg-$1.err")"
		return 1
	fi
	ok "$1 (sent $sent, verdicts $(echo "$j" | num verdicts) of $(echo "$j" | num reply_expected), errors 0)"
	SENT=$((SENT + sent))
}

num() {
	sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" | head -n 1
}

init_cleanup() {
	[ -n "${R:-}" ] && [ -d "$R" ] || return 0
	initd stop >/dev/null 2>&1
	# Whatever is left: only what this test started, by its pid files.
	for f in "$R/var/run/vmware/watchdog-muxd.PID" "$R/var/run/mux/muxd.pid"; do
		p=$(cat "$f" 2>/dev/null) && [ -n "$p" ] && kill -KILL "$p" 2>/dev/null
	done
	if [ -n "${SVM_PID:-}" ]; then
		kill -TERM "$SVM_PID" 2>/dev/null
		wait "$SVM_PID" 2>/dev/null
		SVM_PID=""
	fi
}

init_test() {
	R=$T/root
	SENT=0
	mkdir -p "$R"
	ar p "$VIB" payload1 | tar -xzf - -C "$R" || {
		no "init: unpack" "cannot unpack the payload"
		return
	}
	mode=$(stat -c %a "$R/etc/mux/muxd.conf")
	[ "$mode" = 1644 ] && ok "init: unpacked payload, muxd.conf mode $mode" ||
	    no "init: unpack" "muxd.conf mode $mode, expected 1644"
	mkdir -p "$R/sbin" "$R/bin" "$R/testbin" "$R/var/log"
	cp "$TOP/tests/vib/watchdog.sh" "$R/sbin/watchdog.sh"
	chmod 0755 "$R/sbin/watchdog.sh"
	cat >"$R/bin/esxcli" <<EOF
#!/bin/sh
echo "\$*" >>"$R/var/log/esxcli.log"
EOF
	cat >"$R/testbin/logger" <<EOF
#!/bin/sh
# stand-in for syslog: what muxd writes, with the tag
while IFS= read -r line; do echo "muxd: \$line"; done >>"$R/var/log/syslog.log"
EOF
	chmod 0755 "$R/bin/esxcli" "$R/testbin/logger"

	"$BIN/mux-svm" --listen 127.0.0.1:0 --port-file "$T/svm.port" \
	    --service-id test.vib --tls-off --json --quiet \
	    >"$T/svm.out" 2>"$T/svm.err" &
	SVM_PID=$!
	if ! wait_for "test -s '$T/svm.port'" 50; then
		no "init: mux-svm" "no port file: $(cat "$T/svm.err")"
		return
	fi
	# An operator's edit of the sticky file: cat > keeps its mode 1644.
	cat >"$R/etc/mux/muxd.conf" <<EOF
# test configuration: unix transport, sockets in the scratch root
[mux]
transport = unix
agent_path = $R/var/run/mux/agent.sock
control_path = $R/var/run/mux/control.sock
heartbeat_ms = 1000
[svm vibtest]
address = 127.0.0.1:$(cat "$T/svm.port")
service_id = test.vib
tls = off
EOF
	if ! grep -qx 'transport = unix' "$R/etc/mux/muxd.conf" ||
	    grep -q vsock "$R/etc/mux/muxd.conf" ||
	    ! "$R/opt/mux/bin/muxd" -n -f "$R/etc/mux/muxd.conf" >/dev/null; then
		no "init: config" "the test configuration must be unix-only and parse"
		return
	fi

	initd_expect "init: status before start is 3" 3 "not running" status
	initd_expect "init: install" 0 "installed" install
	if grep -qx "network firewall refresh" "$R/var/log/esxcli.log" &&
	    [ "$(stat -c %a "$R/var/run/mux")" = 700 ]; then
		ok "init: install refreshed the firewall, made var/run/mux 0700"
	else
		no "init: install" "esxcli log: $(cat "$R/var/log/esxcli.log" 2>/dev/null)"
	fi

	initd_expect "init: start" 0 "started (pid" start || return
	p1=$(init_pid)
	exe=$(readlink "/proc/$p1/exe")
	[ "$exe" = "$R/opt/mux/bin/muxd" ] && ok "init: the running muxd is the VIB's ($exe)" ||
	    no "init: exe" "pid $p1 runs '$exe'"
	initd_expect "init: status while running is 0" 0 "under the watchdog" status
	if ctl status >"$T/ctl.out" 2>&1; then
		ok "init: muxctl status from the VIB answers"
	else
		no "init: muxctl status" "$(cat "$T/ctl.out")"
	fi
	wait_for "grep -q 'muxd .* started' '$R/var/log/syslog.log'" 30 &&
	    ok "init: muxd's log reached syslog (logger stand-in)" ||
	    no "init: syslog" "no start line in $R/var/log/syslog.log"
	initd_expect "init: second start is a no-op" 0 "already running (pid $p1)" start

	if wait_for "ctl --json svms | grep -q '\"state\":\"up\"'" 100; then
		ok "init: muxd dialed the SVM"
	else
		no "init: svm up" "$(ctl svms 2>&1)"
	fi
	loadgen "init: agents and an SVM through the VIB's muxd" 2

	kill -KILL "$p1"
	if wait_for "p=\$(init_pid) && [ \"\$p\" != $p1 ] && ctl status" 150; then
		p2=$(init_pid)
		ok "init: watchdog restarted muxd after SIGKILL (pid $p1 -> $p2)"
	else
		no "init: watchdog restart" "$(cat "$R/var/log/watchdog-muxd.log")"
		p2=$(init_pid)
	fi
	grep -q "^[0-9]* restart" "$R/var/log/watchdog-muxd.log" &&
	    ok "init: watchdog log records the restart" ||
	    no "init: watchdog log" "$(cat "$R/var/log/watchdog-muxd.log")"
	initd_expect "init: status after the restart is 0" 0 "running (pid $p2" status
	wait_for "ctl --json svms | grep -q '\"state\":\"up\"'" 100
	loadgen "init: restarted muxd serves agents" 1

	initd_expect "init: restart" 0 "started (pid" restart
	p3=$(init_pid)
	[ -n "$p3" ] && [ "$p3" != "$p2" ] && ! kill -0 "$p2" 2>/dev/null &&
	    ok "init: restart replaced pid $p2 by $p3" ||
	    no "init: restart" "pids $p2 -> ${p3:-none}"

	initd_expect "init: stop" 0 "stopped (pid $p3)" stop
	if ! kill -0 "$p3" 2>/dev/null &&
	    ! MUX_ROOT=$R "$R/sbin/watchdog.sh" -r muxd >/dev/null; then
		ok "init: stop ended muxd and its watchdog"
	else
		no "init: stop" "muxd or watchdog still running"
	fi
	initd_expect "init: status after stop is 3" 3 "not running" status
	initd_expect "init: stop when stopped" 0 "not running" stop

	initd_expect "init: start install (two actions)" 0 "started (pid" start install
	p4=$(init_pid)
	initd_expect "init: upgrade restarts a running muxd" 0 "started (pid" upgrade
	p5=$(init_pid)
	[ -n "$p5" ] && [ "$p5" != "$p4" ] && ok "init: upgrade replaced pid $p4 by $p5" ||
	    no "init: upgrade" "pids $p4 -> ${p5:-none}"
	initd_expect "init: stop remove (two actions)" 0 "stopped (pid $p5).*removed" stop remove
	if grep -qx "network firewall ruleset set -r muxd -e false" "$R/var/log/esxcli.log" &&
	    [ ! -e "$R/var/run/mux/muxd.pid" ] && ! kill -0 "$p5" 2>/dev/null; then
		ok "init: remove stopped muxd, disabled the ruleset, cleaned up"
	else
		no "init: remove" "esxcli log: $(cat "$R/var/log/esxcli.log")"
	fi
	initd_expect "init: status after remove is 3" 3 "not running" status
	initd_expect "init: unknown action" 1 "usage" frobnicate

	kill -TERM "$SVM_PID"
	wait "$SVM_PID"
	SVM_PID=""
	j=$(grep '^{' "$T/svm.out" | tail -n 1)
	rcv=$(echo "$j" | num received)
	holes=$(echo "$j" | num holes)
	if [ "${holes:-1}" = 0 ] && [ "${rcv:-0}" -ge "$SENT" ]; then
		ok "init: mux-svm received $rcv deliveries for $SENT events sent, holes 0"
	else
		no "init: mux-svm" "received ${rcv:-?} for $SENT sent, holes ${holes:-?}: $j"
	fi
}
