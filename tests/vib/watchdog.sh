#!/bin/busybox sh
# Stand-in for ESXi's /sbin/watchdog.sh, copied into the test's scratch
# root as sbin/watchdog.sh. Same command line as the real one for what
# vib/muxd.init uses:
#
#   watchdog.sh [-d] -s TAG [-u MIN_UPTIME] [-q MAX_QUICK] [-t MAX_TOTAL] CMD
#   watchdog.sh -k TAG        stop supervising (CMD keeps running, as on ESXi)
#   watchdog.sh -r TAG        exit 0 and print the pid if it runs
#
# and it really supervises: CMD runs in its own session (setsid, like the
# real one); when it exits, it is started again, until more than MAX_QUICK
# runs in a row lasted less than MIN_UPTIME seconds. Every start and exit
# goes to $MUX_ROOT/var/log/watchdog-TAG.log, which the tests read.
ROOT=${MUX_ROOT:?MUX_ROOT must be set: this stand-in never touches /}
mode=""
tag=""
daemon=0
min_up=60
max_quick=5
max_total=1000000
while getopts "dnas:k:r:u:q:t:i:b:c:f:e:" o; do
	case $o in
	d) daemon=1 ;;
	s) mode=start; tag=$OPTARG ;;
	k) mode=kill; tag=$OPTARG ;;
	r) mode=query; tag=$OPTARG ;;
	u) min_up=$OPTARG ;;
	q) max_quick=$OPTARG ;;
	t) max_total=$OPTARG ;;
	n | a | i | b | c | f | e) ;;
	*) exit 1 ;;
	esac
done
shift $((OPTIND - 1))
cmd=$*
[ -n "$tag" ] || { echo "usage: watchdog.sh [-d] -s|-k|-r TAG [CMD]" >&2; exit 1; }
piddir=$ROOT/var/run/vmware
pidfile=$piddir/watchdog-$tag.PID
log=$ROOT/var/log/watchdog-$tag.log
mkdir -p "$piddir" "$ROOT/var/log"

note() {
	echo "$(date +%s) $*" >>"$log"
}

running() {
	[ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

case $mode in
start)
	[ -n "$cmd" ] || exit 1
	if [ "$daemon" = 1 ]; then
		rm -f "$pidfile"
		setsid "$0" -s "$tag" -u "$min_up" -q "$max_quick" \
		    -t "$max_total" "$cmd" </dev/null >/dev/null 2>&1 &
		i=0
		while [ ! -s "$pidfile" ] && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		[ -s "$pidfile" ]
		exit $?
	fi
	echo $$ >"$pidfile"
	trap 'note "watchdog $$ stops (signal)"; rm -f "$pidfile"; exit 0' HUP TERM INT
	quick=0
	total=0
	while :; do
		t0=$(date +%s)
		eval "setsid env $cmd &"
		child=$!
		note "start $child: $cmd"
		wait "$child"
		rc=$?
		up=$(($(date +%s) - t0))
		total=$((total + 1))
		note "exit $child: status $rc after $up s"
		if [ "$up" -lt "$min_up" ]; then
			quick=$((quick + 1))
		else
			quick=0
		fi
		if [ "$quick" -gt "$max_quick" ] || [ "$total" -gt "$max_total" ]; then
			note "gave up after $total runs"
			rm -f "$pidfile"
			exit 0
		fi
		note "restart"
	done
	;;
kill)
	running || exit 1
	pid=$(cat "$pidfile")
	kill -HUP "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	! kill -0 "$pid" 2>/dev/null
	;;
query)
	running || exit 1
	cat "$pidfile"
	;;
*)
	exit 1
	;;
esac
