#!/bin/sh
# Run the end-to-end tests of one build: tests/e2e/run.sh BUILD_DIR [NAME...]
# Each test binary starts real muxd / mux-svm / mux-loadgen processes from
# BUILD_DIR/bin over the unix backend. Closing line: "N passed, N failed".
set -u
B=${1:?usage: run.sh BUILD_DIR [NAME...]}
shift
names="$*"
[ -n "$names" ] || names=$(cd "$B/e2e" && ls test_* 2>/dev/null | grep -v '\.log$' | tr '\n' ' ')
MUX_BIN="$B/bin"
export MUX_BIN
pass=0
fail=0
bad=""
for n in $names; do
	mkdir -p "$B/logs"
	log="$B/logs/e2e-$n.log"
	start=$(date +%s)
	"$B/e2e/$n" >"$log" 2>&1
	rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$B"/e2e/*.san.* 2>/dev/null; then
		rc=1
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$rc" -ne 0 ]; then
		[ "$f" -gt 0 ] || fail=$((fail + 1))
		bad="$bad $n"
		echo "e2e: $n: FAILED after $(( $(date +%s) - start )) s (log $log)"
		grep -vE '^\[ (RUN|      OK) ' "$log" | tail -n 40 | sed 's/^/    /'
	else
		echo "e2e: $n: $p passed in $(( $(date +%s) - start )) s"
	fi
done
echo "e2e ($B): $pass passed, $fail failed"
[ -z "$bad" ] || { echo "e2e: failing:$bad"; exit 1; }
exit 0
