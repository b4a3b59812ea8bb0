#!/bin/sh
# Runs inside the vsock guest (as /mux/run): every line of /mux/guest-tests
# over the vsock backend. Its output is the guest's report on ttyS1; the
# closing line is "vsock guest: N passed, N failed".
set -u
export MUX_BIN=/mux/bin
export MUX_E2E_TRANSPORT=vsock		# harness: transport = vsock, vsock:1:PORT
export MUX_E2E_SLOW=1			# emulated CPU: the harness allows more time
pass=0
fail=0
bad=""
i=0
sed -e 's/#.*//' /mux/guest-tests | while read -r bin filter; do
	[ -n "$bin" ] || continue
	echo "$bin ${filter:-}"
done >/tmp/guest-tests.run
while read -r bin filter; do
	i=$((i + 1))
	log=/tmp/guest-$i-$bin.log
	start=$(date +%s)
	MUX_E2E_FILTER=${filter:-} "/mux/e2e/$bin" >"$log" 2>&1
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	what="$bin${filter:+ $filter}"
	# A line that runs nothing is a mistake in the list, not a pass.
	if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ]; then
		rc=1
		if [ "$s" -gt 0 ]; then
			echo "vsock guest: $what: every test skipped on vsock:"
			grep '^skipped on vsock:' "$log" | sed 's/^/    /'
		else
			echo "vsock guest: $what: no test matched"
		fi
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$rc" -ne 0 ]; then
		[ "$f" -gt 0 ] || fail=$((fail + 1))
		bad="$bad $bin"
		echo "vsock guest: $what: FAILED after $(( $(date +%s) - start )) s"
		grep -vE '^\[ (RUN|      OK) ' "$log" | tail -n 60 | sed 's/^/    /'
		for d in /tmp/mux-e2e-*; do
			[ -f "$d/muxd.err" ] || continue
			echo "    --- $d/muxd.err (tail)"
			tail -n 15 "$d/muxd.err" | sed 's/^/    /'
		done
	else
		[ "$s" -gt 0 ] && skipped=", $s skipped" || skipped=""
		echo "vsock guest: $what: $p passed$skipped in $(( $(date +%s) - start )) s"
		grep -E '^(loadgen|vsock|fan-out|restart|abrupt)[^:]*:' "$log" |
		    cut -c 1-160 | sed 's/^/    /'
	fi
done </tmp/guest-tests.run
echo "vsock guest: $pass passed, $fail failed"
[ -z "$bad" ] && [ "$fail" -eq 0 ]
