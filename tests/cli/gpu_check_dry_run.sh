#!/usr/bin/env bash
# ctest cli.gpu_check_dry_run: tools/gpu_check.sh's own logic without a GPU (--dry-run runs
# no step). Checks the step order of --quick and of a full run with --only, that the conv
# benchmark gets its CSV and tuning-CSV paths, the recorded command line, the summary and
# report being written, --budget skipping what no longer fits, and bad options exiting 2;
# then, with --skip-build and a stand-in conv_vs_cudnn, the wgmma probe's consequences: when
# it fails, the later steps run with DISCO_WGMMA=0 and the check exits 1; when it passes, not.
set -u
unset DISCO_WGMMA
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
GC="$ROOT/tools/gpu_check.sh"
fail() { echo "FAIL: $*"; exit 1; }
# the "step result sec note" table of a summary.txt: "name:state" per step, in order
steps() { awk '/^step +result/{f=1; next} f && NF == 0 {exit} f {printf "%s:%s ", $1, $2}' "$1/summary.txt"; }

# 1. --quick: correctness and the headline figures first
"$GC" "$OUT/q" --quick --cuda-only --dry-run --build "$OUT/build" --deps "$OUT/nodeps" > "$OUT/q.out" 2>&1 ||
  { cat "$OUT/q.out"; fail "--quick --dry-run exited $?"; }
want="configure:DRY build_cuda:DRY wgmma_probe:DRY ctest_gpu:DRY ctest_index_math:DRY parity_cuda:DRY sanitizer_memcheck:DRY"
want="$want conv_vs_cudnn_128:DRY ops_cuda:DRY step_vs_pytorch:DRY ncu_step:DRY sanitizer_racecheck:DRY sanitizer_synccheck:DRY"
want="$want parity_cuda_tf32:DRY parity_cuda_bf16:DRY ncu_conv:DRY ncu_nhwc:DRY ncu_ops:DRY "
got="$(steps "$OUT/q")"
[ "$got" = "$want" ] || fail "--quick steps: got '$got', want '$want'"
grep -q -- "--size 128 --iters 10 --csv $OUT/q/conv_vs_cudnn_128.csv --tuning-csv $OUT/q/conv_tuning_128.csv" \
  "$OUT/q/conv_vs_cudnn_128.log" || fail "conv_vs_cudnn_128 command: $(head -n1 "$OUT/q/conv_vs_cudnn_128.log")"
grep -q -- "--tool memcheck" "$OUT/q/sanitizer_memcheck.log" || fail "memcheck command"
grep -q -- "DISCO_CUDA_EXACT_ALLOC=1" "$OUT/q/sanitizer_memcheck.log" || fail "memcheck without exact allocations"
grep -q -- "--no-tune --plan nhwc" "$OUT/q/ncu_nhwc.log" || fail "ncu_nhwc command: $(head -n1 "$OUT/q/ncu_nhwc.log")"
grep -q -- "--no-tune --plan wgmma" "$OUT/q/wgmma_probe.log" || fail "wgmma_probe command: $(head -n1 "$OUT/q/wgmma_probe.log")"
grep -q -- "--profile-from-start off .*--metrics gpu__time_duration.sum .*--log-file $OUT/q/ncu_step.csv .*train_step --device cuda --resolution 128 --batch 32 --math bf16 --graph .*--profile-step" \
  "$OUT/q/ncu_step.log" || fail "ncu_step command: $(head -n1 "$OUT/q/ncu_step.log")"
grep -q "^command: tools/gpu_check.sh $OUT/q --quick --cuda-only --dry-run" "$OUT/q/env.log" || fail "command line not recorded"
[ -s "$OUT/q/report.md" ] || fail "no report.md"
grep -q "^#### Targets" "$OUT/q/report.md" || fail "report.md has no targets section"
grep -q "not measured (no conv_vs_cudnn_128.csv)" "$OUT/q/report.md" || fail "report.md: conv should be 'not measured'"
grep -q "disco gpu_check summary" "$OUT/q.out" || fail "summary not printed"

# 2. the natural order, a subset of groups, the full build
"$GC" "$OUT/f" --only conv,step --dry-run --build "$OUT/build" --deps "$OUT/nodeps" > "$OUT/f.out" 2>&1 ||
  { cat "$OUT/f.out"; fail "--only conv,step --dry-run exited $?"; }
want="configure:DRY build:DRY wgmma_probe:DRY conv_vs_cudnn_128:DRY conv_vs_cudnn_256:DRY step_vs_pytorch:DRY train_step_cuda:DRY "
got="$(steps "$OUT/f")"
[ "$got" = "$want" ] || fail "--only conv,step steps: got '$got', want '$want'"

# 3. a budget that is used up: every step recorded as SKIPPED, still exit 0 and a summary
"$GC" "$OUT/b" --quick --dry-run --budget 30 --only tests --build "$OUT/build" --deps "$OUT/nodeps" > "$OUT/b.out" 2>&1 ||
  fail "--budget 30 exited $?"
got="$(steps "$OUT/b")"
[ "$got" = "configure:SKIPPED build:SKIPPED wgmma_probe:SKIPPED ctest_gpu:SKIPPED ctest_index_math:SKIPPED " ] ||
  fail "--budget 30 steps: got '$got'"

# 4. bad options
"$GC" "$OUT/x" --dry-run --no-such-option > /dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "unknown option: exit $rc, want 2"
"$GC" "$OUT/x" --dry-run --only tests,bogus > /dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "unknown --only group: exit $rc, want 2"
# 5. the wgmma probe, run for real against a stand-in conv_vs_cudnn that prints its arguments
# and DISCO_WGMMA, and fails pinned runs (--plan) when FAKE_PROBE_FAIL=1
mkdir -p "$OUT/fb/benchmarks"
cat > "$OUT/fb/benchmarks/conv_vs_cudnn" <<'EOF'
#!/usr/bin/env bash
echo "stand-in conv_vs_cudnn $* DISCO_WGMMA=${DISCO_WGMMA:-unset}"
case " $* " in *" --plan "*) [ "${FAKE_PROBE_FAIL:-0}" = 1 ] && { echo "128x128wgmma MISMATCH"; exit 1; } ;; esac
exit 0
EOF
chmod +x "$OUT/fb/benchmarks/conv_vs_cudnn"
for f in 1 0; do
  FAKE_PROBE_FAIL=$f "$GC" "$OUT/p$f" --quick --skip-build --only conv --build "$OUT/fb" --deps "$OUT/nodeps" \
    > "$OUT/p$f.out" 2>&1
  rc=$?
  got="$(steps "$OUT/p$f")"
  probe="FAIL(1)"; [ $f = 0 ] && probe="PASS"
  [ "$got" = "configure:SKIPPED build:SKIPPED wgmma_probe:$probe conv_vs_cudnn_128:PASS " ] ||
    { cat "$OUT/p$f.out"; fail "probe fail=$f: steps '$got'"; }
  grep -q -- "--plan 128x64wgmma" "$OUT/p$f/wgmma_probe.log" || fail "probe fail=$f: 128x64wgmma not pinned"
  if [ $f = 1 ]; then
    [ $rc -eq 1 ] || fail "failed probe: exit $rc, want 1"
    grep -q "DISCO_WGMMA=0" "$OUT/p1/conv_vs_cudnn_128.log" || fail "failed probe: conv step ran without DISCO_WGMMA=0"
    grep -q "wgmma_probe .*FAILED: the later steps run with DISCO_WGMMA=0" "$OUT/p1/summary.txt" ||
      fail "failed probe: no note in the summary"
  else
    [ $rc -eq 0 ] || { cat "$OUT/p0.out"; fail "passing probe: exit $rc, want 0"; }
    grep -q "DISCO_WGMMA=unset" "$OUT/p0/conv_vs_cudnn_128.log" || fail "passing probe: conv step got DISCO_WGMMA set"
  fi
done
echo "gpu_check --dry-run: ok"
