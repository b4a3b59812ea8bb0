#!/bin/sh
# Proof that the tests can fail: each mutant breaks one behaviour in a
# scratch copy of the committed tree (HEAD), and the test named beside it must then fail.
# Usage: tests/mutants.sh   (run by `make mutants`; takes a few minutes)
#        ONLY=WORD tests/mutants.sh runs the mutants whose line has WORD.
# Prints one line per mutant and "N passed, N failed" (a mutant "passes"
# when the test caught it).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/mux-mutants.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0

# file | sed expression | test binary (e2e or unit) | test name
MUTANTS='
mux/svm.c|s/return (s->classes \& (1u << m->cls)) != 0 \&\& svm_wants_cid(s, m->cid);/return 1;/|e2e/test_fanout|test_fanout_accounting
mux/svm.c|s/svm_send_gap(s, s->cursor, tail - 1, MUX__GAP__REASON__OVERRUN);/(void)0;/|e2e/test_fanout|test_slow_svm_gets_gaps
mux/fanout.c|s/strcmp(s->instance_id, instance_id) == 0)/0)/|e2e/test_svms|test_duplicate_registration
mux/agent.c|s/if (e->event_id <= last) {/if (0) {/|e2e/test_agents|test_malformed_closes_only_that_agent
mux/verdict.c|s/if (action == 2) {/if (0) {/|tests/test_verdict|test_deny_wins_at_once
mux/verdict.c|s/p->deadline <= now_mono/p->deadline <= now_mono + 1000000/|tests/test_verdict|test_timeout_never_early
mux/agent.c|s/verdict_drop_owner(ing->vt, \&a->vo);/(void)0;/|e2e/test_verdicts|test_verdict_never_misrouted
mux/ring.c|s/seq - tail >= r->events)/seq - tail > r->events)/|tests/test_ring|test_full_events
proto/frame.c|s/if (n > max_frame)/if (n > max_frame + 1)/|tests/test_frame|test_scan_lengths
proto/frame.c|s/a->used + need > a->budget/0/|tests/test_frame|test_budget_refuses_empty_submessages
mux/svm.c|s/s->cursor = r->resume_from;/s->cursor = head;/|e2e/test_fanout|test_svm_restart_resume
mux/reload.c|s/if (config_load(mux->config_path, n, err, sizeof(err)) == -1) {/if (0) {/|e2e/test_reload|test_reload_bad_file_keeps_running
mux/fanout.c|s/SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);/SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);/|e2e/test_tls|test_tls_svm_wrong_ca
mux/ingest.c|s/if (!ingest_bucket_take(ing, vm, raw->len, now)) {/if (!ingest_bucket_take(ing, vm, raw->len, now) \&\& 0) {/|e2e/test_verdicts|test_flood_one_vm
'

echo "$MUTANTS" | while IFS='|' read -r file expr bin name; do
	[ -n "$file" ] || continue
	case "$file|$expr|$name" in *"${ONLY:-}"*) ;; *) continue ;; esac
	dir="$work/tree"
	rm -rf "$dir"
	mkdir -p "$dir"
	# The committed tree (HEAD), so work in progress never skews a run.
	git -C "$top" archive HEAD | tar -x -C "$dir"
	cp -r "$top/../shared" "$work/" 2>/dev/null || true
	before=$(md5sum "$dir/$file" | cut -d' ' -f1)
	sed -i "$expr" "$dir/$file"
	if [ "$(md5sum "$dir/$file" | cut -d' ' -f1)" = "$before" ]; then
		echo "mutant $file [$expr]: did not apply (update tests/mutants.sh)"
		echo x >>"$work/failed"
		continue
	fi
	if ! make -C "$dir" --no-print-directory -s all >"$work/build.log" 2>&1; then
		echo "mutant $file: does not build"; tail -5 "$work/build.log"
		echo x >>"$work/failed"
		continue
	fi
	case $bin in
	e2e/*) MUX_BIN="$dir/build/bin" timeout 300 "$dir/build/$bin" >"$work/run.log" 2>&1 ;;
	*) timeout 300 "$dir/build/$bin" >"$work/run.log" 2>&1 ;;
	esac
	if grep -q "^\[  FAILED  \] $name\$" "$work/run.log"; then
		echo "mutant $file [$expr]: caught by $name"
		echo x >>"$work/passed"
	else
		echo "mutant $file [$expr]: NOT caught by $name"
		echo x >>"$work/failed"
	fi
done
[ -f "$work/passed" ] && pass=$(wc -l <"$work/passed")
[ -f "$work/failed" ] && fail=$(wc -l <"$work/failed")
echo "mutants: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
