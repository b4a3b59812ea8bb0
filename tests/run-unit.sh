#!/bin/sh
# Run the unit tests of one build: tests/run-unit.sh BUILD_DIR [NAME...]
# Prints one line per binary and a closing "N passed, N failed" line
# (counting cmocka test cases). Exit 1 when anything failed.
set -u
B=${1:?usage: run-unit.sh BUILD_DIR [NAME...]}
shift
names="$*"
[ -n "$names" ] || names=$(cd "$B/tests" && ls test_* 2>/dev/null | tr '\n' ' ')
pass=0
fail=0
bad=""
for n in $names; do
	bin="$B/tests/$n"
	mkdir -p "$B/logs"
	log="$B/logs/$n.log"
	if [ ! -x "$bin" ]; then
		echo "unit: $n: missing binary" >&2
		fail=$((fail + 1))
		bad="$bad $n"
		continue
	fi
	"$bin" >"$log" 2>&1
	rc=$?
	# cmocka's closing lines: "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s), ..."
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	# Sanitizer reports fail the binary even when cmocka said OK.
	if grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$log"; then
		rc=1
		f=$((f + 1))
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$rc" -ne 0 ]; then
		[ "$f" -gt 0 ] || fail=$((fail + 1))
		bad="$bad $n"
		echo "unit: $n: FAILED ($p passed, $f failed; log $log)"
		tail -n 30 "$log" | sed 's/^/    /'
	else
		echo "unit: $n: $p passed"
	fi
done
echo "unit ($B): $pass passed, $fail failed"
[ -z "$bad" ] || { echo "unit: failing:$bad"; exit 1; }
exit 0
