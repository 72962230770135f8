#!/usr/bin/env bash
# gpu_check.sh [OUTDIR] [--deps DIR] [--build DIR] [--jobs N] [--quick] [--cuda-only] [--budget S]
#              [--only GROUPS] [--skip-build] [--dry-run]
#
# The whole GPU verification of disco in one go, for a short slot on an H100 / H200 machine
# without apt or network (nvcc 13, cmake, ninja, PyTorch, compute-sanitizer):
#   1. configure + build (Release, DISCO_CUDA=ON, sm_90, tests + benchmarks) with the
#      dependencies from DIR (--deps, $DISCO_DEPS_DIR, default <repo>/.deps; see pack_deps.sh)
#   2. ctest -L gpu           (every CUDA kernel against double references and cuDNN)
#   3. compute-sanitizer memcheck, racecheck, synccheck on disco_cuda_tests "[sanitize]"
#   3b. tools/parity_check.py: `disco step --device cuda` against the official PyTorch step
#   4. benchmarks: conv_vs_cudnn (128 and 256 px), ops_cuda (fused loss, instance norm, Adam
#      and element-wise GB/s against the device copy bandwidth), benchmarks/step_vs_pytorch.py
#      and build/benchmarks/train_step --device cuda when they exist
#   5. Nsight Compute counters of a few conv and memory-bound kernels (tools/ncu_summary.py),
#      and one training step's kernel durations by category (ncu_step: train_step
#      --profile-step, ncu_summary.py --breakdown), when ncu exists and time is left
#   6. a summary table, printed last; every step's full log is in OUTDIR (default
#      ./gpu-check-out), and OUTDIR/report.md: the docs/benchmarks.md section (tools/gpu_report.py).
# --quick: 128 px only, fewer timing runs. --cuda-only: build only the CUDA targets.
# --budget S: finish within S seconds (each step's limit is cut to what is left, steps
# that no longer fit are recorded as SKIPPED), so the summary is always printed; for a
# device slot of one 600 s call use e.g. --budget 540. With --quick each sanitizer gets at
# most 120 s and the GPU ctest 300 s (150 s a test), so a hang or a slow racecheck cannot eat
# the benchmarks' time, and the order puts correctness and the headline figures first: tests,
# parity, memcheck, conv, ops, step, the step's kernel breakdown, then racecheck, synccheck, the
# TF32/BF16 parity rows, ncu.
# --only GROUPS: comma-separated subset of tests,sanitizers,parity,conv,ops,step,ncu (the
# configure + build always run; an existing --build folder is reused, so a second call on a
# warm machine only rebuilds what changed): e.g. one call with --only tests,sanitizers,parity
# and one with --only conv,ops,step when a single call cannot fit everything. Default: all.
# --skip-build: no configure or build; the binaries in --build are run as they are (a second
# call on a warm machine whose build is known good; ctest cli.gpu_check_dry_run runs the
# checks' own logic with stand-in binaries this way).
# --dry-run: run nothing (no configure, build or check; binaries are taken as built), record each
# step as DRY with the command it would run in its log, then write the summary and report as
# usual: the script's own logic -- options, order, budget, summary -- checked without a GPU
# (ctest cli.gpu_check_dry_run).
# Exit status: 0 when every step that ran passed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=""
DEPS="${DISCO_DEPS_DIR:-$ROOT/.deps}"
BUILD="$ROOT/build-gpu"
JOBS="$(nproc 2>/dev/null || echo 8)"
QUICK=0
CUDA_ONLY=0
BUDGET=0
ONLY="tests,sanitizers,parity,conv,ops,step,ncu"
DRY=0
SKIP_BUILD=0
COMMAND_LINE="tools/gpu_check.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --deps) DEPS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --cuda-only) CUDA_ONLY=1; shift ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "gpu_check: unknown option $1" >&2; exit 2 ;;
    *) OUT="$1"; shift ;;
  esac
done
for g in ${ONLY//,/ }; do
  case "$g" in tests|sanitizers|parity|conv|ops|step|ncu) ;; *) echo "gpu_check: --only: unknown group '$g' (tests,sanitizers,parity,conv,ops,step,ncu)" >&2; exit 2 ;; esac
done
want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

names=(); states=(); secs=(); notes=()
STEP_NOTE=""
record() { names+=("$1"); states+=("$2"); secs+=("$3"); notes+=("$4"); }

T_START=$(date +%s)
# step NAME TIMEOUT_S CMD...: run with a time limit, log to OUT/NAME.log, record the result
step() {
  local name="$1" limit="$2"; shift 2
  local log="$OUT/$name.log" t0 rc
  if [ "$BUDGET" -gt 0 ]; then
    local left=$(( BUDGET - ($(date +%s) - T_START) - 25 ))
    if [ $left -lt 20 ]; then
      echo "== [$name] SKIPPED: --budget $BUDGET s used up"
      record "$name" "SKIPPED" 0 "no time left (--budget $BUDGET)"
      STEP_NOTE=""
      return 0
    fi
    [ $left -lt "$limit" ] && limit=$left
  fi
  echo "== [$name] $*" | tee "$log"
  if [ $DRY -eq 1 ]; then
    echo "== [$name] DRY (--dry-run: not run)"
    record "$name" "DRY" 0 "${STEP_NOTE:-}"
    STEP_NOTE=""
    return 0
  fi
  t0=$(date +%s)
  timeout --signal=TERM --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  local state="PASS"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then state="TIMEOUT"
  elif [ $rc -eq 77 ]; then state="SKIPPED"; STEP_NOTE="${STEP_NOTE:+$STEP_NOTE; }exit 77: see the log"; rc=0
  elif [ $rc -ne 0 ]; then state="FAIL($rc)"; fi
  echo "== [$name] $state in ${dt}s (log: $log)"
  record "$name" "$state" "$dt" "${STEP_NOTE:-}"
  STEP_NOTE=""
  return $rc
}

# ---- environment -------------------------------------------------------------------------------
{
  echo "date: $(date -u)"; echo "host: $(hostname)"; echo "repo: $ROOT"; echo "deps: $DEPS"
  echo "command: $COMMAND_LINE"
  nvidia-smi || true
  nvcc --version || /usr/local/cuda/bin/nvcc --version || true
  cmake --version | head -n1; ninja --version || true
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" || true
  command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer || true
  git -C "$ROOT" log -1 --oneline 2>/dev/null || true
  git -C "$ROOT" status --short 2>/dev/null | head -n 50 || true
} > "$OUT/env.log" 2>&1
export PATH="$PATH:/usr/local/cuda/bin"

# ---- dependencies --------------------------------------------------------------------------------
CMAKE_DEP_ARGS=()
if [ -d "$DEPS/include" ]; then
  DEPS="$(cd "$DEPS" && pwd)"
  export CPATH="$DEPS/include${CPATH:+:$CPATH}"   # <CLI/CLI.hpp>, <stb/stb_image.h>, ...
  export LD_LIBRARY_PATH="$DEPS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_PATH="$DEPS/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  CMAKE_DEP_ARGS+=("-DCMAKE_PREFIX_PATH=$DEPS")
  [ -d "$DEPS/share/eigen3/cmake" ] && CMAKE_DEP_ARGS+=("-DEigen3_DIR=$DEPS/share/eigen3/cmake")
  [ -d "$DEPS/lib/cmake/Catch2" ] && CMAKE_DEP_ARGS+=("-DCatch2_DIR=$DEPS/lib/cmake/Catch2")
  [ -d "$DEPS/share/cmake/nlohmann_json" ] && CMAKE_DEP_ARGS+=("-Dnlohmann_json_DIR=$DEPS/share/cmake/nlohmann_json")
  if ! command -v pkg-config >/dev/null 2>&1; then
    CMAKE_DEP_ARGS+=("-DPKG_CONFIG_EXECUTABLE=$DEPS/bin/pkg-config")
    echo "gpu_check: no pkg-config on this machine: using $DEPS/bin/pkg-config"
  fi
  # the packed libstb.so was built elsewhere: make sure it links and loads here, else rebuild it
  cat > "$OUT/stb_probe.c" <<'EOF'
#include <stdio.h>
extern const char* stbi_failure_reason(void);
int main(void) { const char* r = stbi_failure_reason(); printf("libstb ok %p\n", (const void*)r); return 0; }
EOF
  if ! { cc "$OUT/stb_probe.c" -L"$DEPS/lib" -lstb -o "$OUT/stb_probe" && "$OUT/stb_probe"; } >"$OUT/stb_probe.log" 2>&1; then
    echo "gpu_check: packed libstb.so does not work here; rebuilding it from the headers" | tee -a "$OUT/stb_probe.log"
    mkdir -p "$OUT/stb"
    if cc -O2 -fPIC -shared -I"$DEPS/include/stb" "$DEPS/src/stb_impl.c" -o "$OUT/stb/libstb.so" -lm >>"$OUT/stb_probe.log" 2>&1; then
      rm -f "$DEPS/lib/libstb.so" "$DEPS/lib/libstb.so.0" "$DEPS/lib/libstb.so.0.0"
      cp "$OUT/stb/libstb.so" "$DEPS/lib/libstb.so"
    fi
  fi
else
  echo "gpu_check: no dependency folder at $DEPS (run tools/pack_deps.sh where apt works); trying system packages"
fi

# ---- configure and build ---------------------------------------------------------------------------
# cuDNN's library folder as configured (the test binaries load it, at build time too)
cudnn_path() {
  local dir
  dir="$(sed -n 's/^DISCO_CUDNN_LIBRARY_DIR:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)"
  [ -n "$dir" ] && export LD_LIBRARY_PATH="$dir:$LD_LIBRARY_PATH"
  return 0
}
if [ $SKIP_BUILD -eq 1 ]; then
  record configure "SKIPPED" 0 "--skip-build: $BUILD taken as built"
  record build "SKIPPED" 0 "--skip-build"
  cudnn_path
else
  CONF=(cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDISCO_CUDA=ON
        -DCMAKE_CUDA_ARCHITECTURES=90 -DDISCO_BUILD_TESTS=ON -DDISCO_BUILD_BENCHMARKS=ON "${CMAKE_DEP_ARGS[@]}")
  if ! step configure 600 "${CONF[@]}" -DDISCO_BUILD_EXAMPLES=ON; then
    STEP_NOTE="retry without examples" step configure_no_examples 600 "${CONF[@]}" -DDISCO_BUILD_EXAMPLES=OFF
  fi
  cudnn_path
  CUDA_TARGETS=(disco_cuda disco_cuda_tests conv_vs_cudnn ops_cuda train_step)
  # the `disco` tool too when examples are configured (parity_cuda runs `disco step --device cuda`)
  if [ $DRY -eq 1 ] || cmake --build "$BUILD" --target help 2>/dev/null | grep -q "disco_tool"; then CUDA_TARGETS+=(disco_tool); fi
  if [ $CUDA_ONLY -eq 1 ]; then
    step build_cuda 900 cmake --build "$BUILD" -j "$JOBS" --target "${CUDA_TARGETS[@]}"
  else
    # -k 0: build everything that can be built, so one broken part does not hide the others
    if ! step build 900 cmake --build "$BUILD" -j "$JOBS" -- -k 0; then
      STEP_NOTE="CUDA targets alone after a failed full build" step build_cuda 900 cmake --build "$BUILD" -j "$JOBS" --target "${CUDA_TARGETS[@]}"
    fi
  fi
fi

# ---- the checks, one function per step; the order they run in is chosen below -------------------
# is this program there to run? (--dry-run: taken as built)
have() { [ $DRY -eq 1 ] || [ -x "$1" ]; }
TESTS_BIN="$BUILD/tests/disco_cuda_tests"
DISCO_BIN="$BUILD/examples/disco"
BENCH="$BUILD/benchmarks/conv_vs_cudnn"
OPS="$BUILD/benchmarks/ops_cuda"
SAN="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
NCU="$(command -v ncu || { [ -x /usr/local/cuda/bin/ncu ] && echo /usr/local/cuda/bin/ncu; } || true)"
CTEST_LIMIT=1200; CTEST_EACH=900; SAN_LIMIT=900
# a short slot: a hung kernel must not eat the whole budget
[ $QUICK -eq 1 ] && { CTEST_LIMIT=300; CTEST_EACH=150; SAN_LIMIT=120; }

# GPU tests: every kernel against double references and cuDNN, the GPU step against the CPU one
do_tests() {
  if ! have "$TESTS_BIN"; then record ctest_gpu "NOT BUILT" 0 "$TESTS_BIN missing"; return; fi
  step ctest_gpu "$CTEST_LIMIT" ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout "$CTEST_EACH"
  # every test's output, the passing ones' too: their warnings carry figures (the summary quotes
  # the largest tuning-candidate difference and the whole step on the channels-last / wgmma kernels)
  [ $DRY -eq 1 ] || cp "$BUILD/Testing/Temporary/LastTest.log" "$OUT/ctest_gpu_full.log" 2>/dev/null || true
  # also the CPU test suite's CUDA index-math checks and the benchmark self-test
  # (with --cuda-only the CPU test binary is not built: CI runs the index-math test anyway)
  local self="bench.conv_vs_cudnn_self_test|bench.ops_cuda_self_test"
  [ $CUDA_ONLY -eq 1 ] || self="cpu.test_cuda_index_math|$self"
  step ctest_index_math 300 ctest --test-dir "$BUILD" -R "$self" --output-on-failure
}

# compute-sanitizer TOOL on the small "[sanitize]" cases. Heuristic conv plans (no tuning runs under
# the sanitizer): they already cover the three tile shapes (3-stage pipelines, dynamic shared memory
# over 48 KB for 128x128), split-K and dgrad phases on these problems; the second case pins each
# channels-last and wgmma tile, which only tuning would pick. DISCO_CUDA_EXACT_ALLOC=1: every
# device block exactly its tensor's size (no rounding to the caching allocator's bins), so memcheck
# sees a read or write past a tensor's end
do_sanitizer() {
  if ! have "$TESTS_BIN" || ! have "$SAN"; then
    record "sanitizer_$1" "SKIPPED" 0 "no compute-sanitizer or no test binary"; return
  fi
  step "sanitizer_$1" "$SAN_LIMIT" env DISCO_CONV_AUTOTUNE=0 DISCO_CUDA_EXACT_ALLOC=1 "$SAN" --tool "$1" --error-exitcode 3 "$TESTS_BIN" "[sanitize]"
}

# `disco step --device cuda` (FP32, disco's kernels) against the official train.py step in
# float64 on the CPU (tools/parity_check.py: every loss, gradient and updated parameter within
# 1e-4 relative, with its documented exceptions), on a small model (64 px, base 16, code 64,
# sep 8, batch 2). Exit 77 (skipped) when this python3 has no torch + numpy.
PARITY=(python3 "$ROOT/tools/parity_check.py" --disco "$DISCO_BIN" --device cuda
        --resolution 64 --sep 8 --code-channels 64 --base-channels 16 --batch 2 --threads 8)
do_parity() {
  if ! have "$DISCO_BIN"; then record parity_cuda "NOT BUILT" 0 "$DISCO_BIN missing"; return; fi
  step parity_cuda 240 "${PARITY[@]}"
}
# the tensor-core modes, for the record: how far a TF32 / BF16 step lands from the official
# float32 semantics (no pass / fail: --tol 1 accepts all, the log's worst error is the figure)
do_parity_modes() {
  have "$DISCO_BIN" || return
  local m
  for m in tf32 bf16; do
    STEP_NOTE="informational (worst error only)" step "parity_cuda_$m" 120 "${PARITY[@]}" --math "$m" --tol 1 \
      --no-kink-adjust --batch-tries 1
  done
}

# The wgmma kernels (sm_90a; src/cuda/conv_wgmma.cu) were checked only in the CPU emulation
# until a GPU runs them. Before anything else, conv_vs_cudnn pins them (--plan wgmma, --plan
# 128x64wgmma) on three layers in every direction, TF32 and BF16, against cuDNN. If that
# fails -- wrong results, or a fault that ends the CUDA context -- every later step runs with
# DISCO_WGMMA=0 (no wgmma candidates), so one bad kernel cannot cost the rest of the slot.
do_wgmma_probe() {
  have "$BENCH" || return 0
  STEP_NOTE="pins the wgmma plans; on failure the later steps run with DISCO_WGMMA=0"
  # 128x128wgmma (the first wgmma candidate of these layers), then 128x64wgmma on the
  # 32 / 64-channel layer; exit status: the first failure's
  local probe='"$0" --size 128 --no-tune --plan wgmma --iters 1 --warmup 0 --only E1.conv3,D.convT3; a=$?
"$0" --size 128 --no-tune --plan 128x64wgmma --iters 1 --warmup 0 --only E1.conv2; b=$?
[ $a -ne 0 ] && exit $a; exit $b'
  if step wgmma_probe 150 bash -c "$probe" "$BENCH"; then
    { [ $DRY -eq 1 ] || [ ! -f "$OUT/wgmma_probe.log" ]; } && return 0  # dry run, or skipped (budget)
    if ! grep -q "wgmma" "$OUT/wgmma_probe.log"; then
      notes[${#notes[@]}-1]="no wgmma plan on this GPU / build (not offered)"
    fi
  else
    export DISCO_WGMMA=0
    notes[${#notes[@]}-1]="FAILED: the later steps run with DISCO_WGMMA=0 (no wgmma candidates)"
  fi
}

do_conv() {
  if ! have "$BENCH"; then record conv_vs_cudnn "NOT BUILT" 0 "$BENCH missing"; return; fi
  if [ $QUICK -eq 1 ]; then
    step conv_vs_cudnn_128 900 "$BENCH" --size 128 --iters 10 --csv "$OUT/conv_vs_cudnn_128.csv" \
      --tuning-csv "$OUT/conv_tuning_128.csv"
  else
    step conv_vs_cudnn_128 900 "$BENCH" --size 128 --iters 20 --csv "$OUT/conv_vs_cudnn_128.csv" \
      --tuning-csv "$OUT/conv_tuning_128.csv"
    step conv_vs_cudnn_256 900 "$BENCH" --size 256 --iters 20 --csv "$OUT/conv_vs_cudnn_256.csv" \
      --tuning-csv "$OUT/conv_tuning_256.csv"
  fi
}

# memory-bound kernels against a device-to-device copy of the same bytes (< 30 s)
do_ops() {
  if ! have "$OPS"; then record ops_cuda "NOT BUILT" 0 "$OPS missing"; return; fi
  if [ $QUICK -eq 1 ]; then
    step ops_cuda 240 "$OPS" --quick --iters 10 --csv "$OUT/ops_cuda.csv"
  else
    step ops_cuda 240 "$OPS" --iters 20 --csv "$OUT/ops_cuda.csv"
  fi
}

do_step() {
  if [ -f "$ROOT/benchmarks/step_vs_pytorch.py" ]; then
    # its options belong to its author: it gets the build and output folders through the environment
    if [ $QUICK -eq 1 ]; then
      # a short slot: PyTorch eager rows and every disco row (math modes, CUDA graph), no torch.compile
      step step_vs_pytorch 240 env DISCO_BUILD_DIR="$BUILD" DISCO_OUT_DIR="$OUT" python3 "$ROOT/benchmarks/step_vs_pytorch.py" \
        --no-compile --variants eager,eager_tuned --steps 20 --warmup 3 --budget 220 --row-timeout 100
    else
      step step_vs_pytorch 900 env DISCO_BUILD_DIR="$BUILD" DISCO_OUT_DIR="$OUT" python3 "$ROOT/benchmarks/step_vs_pytorch.py"
    fi
  fi
  if [ $QUICK -eq 0 ] && have "$BUILD/benchmarks/train_step"; then
    step train_step_cuda 600 "$BUILD/benchmarks/train_step" --device cuda
  fi
}

# Nsight Compute on a few of disco's conv launches (BF16, heuristic plans, three layer
# classes: big maps, many channels, a transposed conv) and on the fused loss / norm / Adam
# kernels: duration, SM and memory throughput, achieved occupancy, registers. What limits each
# kernel, for docs/benchmarks.md. Clocks are left alone (--clock-control none).
do_ncu() {
  if [ $DRY -eq 0 ] && { [ -z "$NCU" ] || [ ! -x "$BENCH" ]; }; then record ncu "SKIPPED" 0 "no ncu on this machine"; return; fi
  # optional: an ncu that cannot read the counters here (e.g. under gVisor) must not fail the check
  local args=(bash -c '"$@"; rc=$?; echo "ncu: exit status $rc (ignored: profiling is optional)"; exit 0' ncu
              "$NCU" --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats
              --csv --page details)
  STEP_NOTE="optional" step ncu_conv 150 "${args[@]}" --kernel-name regex:"conv_igemm|conv_splitk" --launch-count 30 \
    --log-file "$OUT/ncu_conv.csv" "$BENCH" --size 128 --math bf16 --no-tune --iters 1 --warmup 0 \
    --only E1.conv2,E1.conv5,D.convT3
  # the channels-last BF16 kernels (pinned with --plan nhwc) and their pack kernels
  STEP_NOTE="optional" step ncu_nhwc 120 "${args[@]}" --kernel-name regex:"nhwc|conv_splitk" --launch-count 40 \
    --log-file "$OUT/ncu_nhwc.csv" "$BENCH" --size 128 --math bf16 --no-tune --plan nhwc --iters 1 --warmup 0 \
    --only E1.conv2,E1.conv5,D.convT3
  if have "$OPS"; then
    STEP_NOTE="optional" step ncu_ops 90 "${args[@]}" --kernel-name regex:"reduce_finalize|instance_norm|adam" --launch-count 16 \
      --log-file "$OUT/ncu_ops.csv" "$OPS" --quick --iters 1 --warmup 0
  fi
}

# Where one training step's GPU time goes: Nsight Compute on exactly one step of train_step
# (128 px, batch 32, BF16, CUDA graph; the step between cudaProfilerStart / Stop:
# --profile-step), duration metric only, clocks and caches left alone; tools/ncu_summary.py
# --breakdown sums the kernels by category. Optional like the other ncu steps.
do_ncu_step() {
  local ts="$BUILD/benchmarks/train_step"
  if [ $DRY -eq 0 ] && { [ -z "$NCU" ] || [ ! -x "$ts" ]; }; then
    record ncu_step "SKIPPED" 0 "no ncu or no train_step on this machine"; return
  fi
  STEP_NOTE="optional" step ncu_step 150 bash -c '"$@"; rc=$?; echo "ncu: exit status $rc (ignored: profiling is optional)"; exit 0' ncu \
    "$NCU" --profile-from-start off --clock-control none --cache-control none --metrics gpu__time_duration.sum \
    --csv --page details --log-file "$OUT/ncu_step.csv" \
    "$ts" --device cuda --resolution 128 --batch 32 --math bf16 --graph --steps 1 --warmup 3 --profile-step
}

# The order: with --quick (a slot that may not fit everything; --budget skips what no longer
# fits) the steps that decide correctness and the headline figures come first, the slow or
# informational ones last. Otherwise the natural order.
if [ $QUICK -eq 1 ]; then
  ORDER=(wgmma tests parity sanitizer:memcheck conv ops step ncu_step sanitizer:racecheck sanitizer:synccheck parity_modes ncu)
else
  ORDER=(wgmma tests sanitizer:memcheck sanitizer:racecheck sanitizer:synccheck parity parity_modes conv ops step ncu_step ncu)
fi
for item in "${ORDER[@]}"; do
  case "$item" in
    wgmma) { want tests || want conv || want step || want parity; } && do_wgmma_probe ;;
    tests) want tests && do_tests ;;
    sanitizer:*) want sanitizers && do_sanitizer "${item#sanitizer:}" ;;
    parity) want parity && do_parity ;;
    parity_modes) want parity && do_parity_modes ;;
    conv) want conv && do_conv ;;
    ops) want ops && do_ops ;;
    step) want step && do_step ;;
    ncu_step) want ncu && do_ncu_step ;;
    ncu) want ncu && do_ncu ;;
  esac
done

# ---- summary (printed last) ------------------------------------------------------------------------------------
{
  echo
  echo "================ disco gpu_check summary ================"
  echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n1)"
  echo "logs:   $OUT"
  printf '%-26s %-12s %6s  %s\n' "step" "result" "sec" "note"
  for i in "${!names[@]}"; do
    printf '%-26s %-12s %6s  %s\n' "${names[$i]}" "${states[$i]}" "${secs[$i]}" "${notes[$i]}"
  done
  echo
  [ -f "$OUT/ctest_gpu.log" ] && { echo "ctest -L gpu:"; grep -E "tests passed|tests failed|Skipped|\*\*\*Failed|Not Run" "$OUT/ctest_gpu.log" | sed 's/^/  /'; }
  [ -f "$OUT/ctest_gpu_full.log" ] && python3 "$ROOT/tools/gpu_report.py" --test-warnings "$OUT/ctest_gpu_full.log" | sed 's/^/  /'
  for tool in memcheck racecheck synccheck; do
    [ -f "$OUT/sanitizer_$tool.log" ] && echo "$tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -n1)"
  done
  for s in 128 256; do
    [ -f "$OUT/conv_vs_cudnn_$s.log" ] && { echo "conv_vs_cudnn $s px:"; grep -E "^geomean|^grouped loaders|^channels-last|^tuning output check|MISMATCH|disagree|ERROR" "$OUT/conv_vs_cudnn_$s.log" | sed 's/^/  /'; }
  done
  [ -f "$OUT/ops_cuda.log" ] && { echo "ops_cuda (GB/s against the device copy bandwidth):"; grep -E "^copy peak:|^fused_loss_fraction_of_copy:|^(instance_norm|elementwise)_vs_cudnn:|MISMATCH|ERROR|^ops_cuda: (no CUDA|error)" "$OUT/ops_cuda.log" | sed 's/^/  /'; }
  [ -f "$OUT/step_vs_pytorch.md" ] && { echo "training step, disco vs PyTorch:"; grep -E "^\|" "$OUT/step_vs_pytorch.md" | sed 's/^/  /'; }
  for m in "" _tf32 _bf16; do
    [ -f "$OUT/parity_cuda$m.log" ] && { echo "disco step --device cuda${m:+ --math ${m#_}} vs the official PyTorch step (float64):"; grep -E "^worst relative error|^PASS|^FAIL|^SKIP|^error" "$OUT/parity_cuda$m.log" | sed 's/^/  /'; }
  done
  [ -s "$OUT/ncu_step.csv" ] && { echo "ncu (one training step's kernels by category):"; python3 "$ROOT/tools/ncu_summary.py" "$OUT/ncu_step.csv" --breakdown | sed 's/^/  /'; }
  for n in conv nhwc ops; do
    [ -s "$OUT/ncu_$n.csv" ] && { echo "ncu ($n kernels):"; python3 "$ROOT/tools/ncu_summary.py" "$OUT/ncu_$n.csv" --top 30 | sed 's/^/  /'; }
  done
  echo "========================================================="
} | tee "$SUMMARY"
# the Markdown section for docs/benchmarks.md, targets checked (tools/gpu_report.py); never fails the check
python3 "$ROOT/tools/gpu_report.py" "$OUT" > "$OUT/report.md" 2>&1 && echo "report for docs/benchmarks.md: $OUT/report.md" ||
  echo "gpu_report.py failed (see $OUT/report.md)"

for s in "${states[@]}"; do
  case "$s" in PASS|SKIPPED|DRY) ;; *) exit 1 ;; esac
done
exit 0
