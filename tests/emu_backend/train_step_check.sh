#!/usr/bin/env bash
# emu.bench.train_step: benchmarks/train_step on the emulated CUDA backend (CUDA graph, BF16)
# prints every line step_vs_pytorch.py parses, and with --profile-step says which step ran in the
# profiler range (cudaProfilerStart / Stop); --conv-prefer wgmma puts convolutions on the wgmma
# kernels (census), an unknown family is refused. Usage: train_step_check.sh EMU_TRAIN_STEP
set -uo pipefail
out="$("$1" --device cuda --resolution 64 --batch 1 --steps 1 --warmup 3 --math bf16 --graph --profile-step)" || {
  echo "$out"; echo "train_step failed"; exit 1; }
echo "$out"
for k in median_ms pipelined_ms peak_mem_bytes steady_peak_mem_bytes; do
  echo "$out" | grep -Eq "^$k: [0-9]" || { echo "missing line '$k: N'"; exit 1; }
done
echo "$out" | grep -Eq '^conv_plans: [0-9]+ plans \(fprop [0-9]+, dgrad [0-9]+, wgrad [0-9]+\); tile [0-9]+, paired [0-9]+, grouped [0-9]+, thin [0-9]+, smallout [0-9]+, nhwc [0-9]+, wgmma [0-9]+, cudnn [0-9]+$' || {
  echo "missing or malformed line 'conv_plans: ...'"; exit 1; }
echo "$out" | grep -Eq 'graph on \([0-9]+ nodes\)' || { echo "the step did not run as a CUDA graph"; exit 1; }
echo "$out" | grep -Eq '^profiled_step: 0 ' || { echo "missing line 'profiled_step: 0 ...'"; exit 1; }
# every conv on the wgmma kernels where offered (step_vs_pytorch.py's bf16_graph_wgmma row)
out="$("$1" --device cuda --resolution 64 --batch 1 --steps 1 --warmup 2 --base-channels 8 --math bf16 --graph \
  --conv-prefer wgmma)" || { echo "$out"; echo "train_step --conv-prefer wgmma failed"; exit 1; }
echo "$out" | grep -E '^conv_plans:'
echo "$out" | grep -Eq '^conv_plans: .* wgmma [1-9][0-9]*, cudnn 0$' || { echo "--conv-prefer wgmma ran no wgmma plan"; exit 1; }
err="$("$1" --device cuda --resolution 64 --batch 1 --steps 1 --math bf16 --conv-prefer nchw 2>&1)" && {
  echo "--conv-prefer nchw was accepted"; exit 1; }
echo "$err" | grep -q "unknown conv kernel family 'nchw'" || { echo "$err"; echo "no clear error for --conv-prefer nchw"; exit 1; }
echo "train_step output: ok"
