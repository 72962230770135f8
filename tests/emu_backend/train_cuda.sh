#!/usr/bin/env bash
# emu.cli.train_cuda: `disco train --device cuda` (BF16, the step as a CUDA graph and --conv-algo auto by default) on the
# emulated backend for 6 steps, then the CPU tool resumes its checkpoint for 2 more; then
# `eval` with --device cuda (FP32) scores what the CPU tool scores, and `remove` / `transfer`
# run with --device cuda.
#   train_cuda.sh EMU_DISCO CPU_DISCO WORKDIR
set -euo pipefail
emu=$1 cpu=$2 work=$3
rm -rf "$work"
small=(--synthetic --resize 64 --base-channels 8 --code-channels 32 --sep 4 --disc-hidden 32 --bs 2
       --num-display 2 --out "$work")
"$emu" train "${small[@]}" --iters 6 --save-iter 3 --display-iter 3 --device cuda --math bf16 \
  2> "$work.cuda.txt" || { cat "$work.cuda.txt"; echo "FAIL: disco train --device cuda"; exit 1; }
if grep -q "capture failed" "$work.cuda.txt"; then cat "$work.cuda.txt"; echo "FAIL: the CUDA graph fell back"; exit 1; fi
grep -q "steps as CUDA graphs" "$work.cuda.txt" || { cat "$work.cuda.txt"; echo "FAIL: CUDA graphs are not the default"; exit 1; }
grep -q "conv auto" "$work.cuda.txt" || { cat "$work.cuda.txt"; echo "FAIL: --conv-algo auto is not train's default"; exit 1; }
rows=$(tail -n +2 "$work/log.csv" | wc -l)
[ "$rows" -eq 6 ] || { echo "FAIL: $rows log rows, expected 6"; exit 1; }
if tail -n +2 "$work/log.csv" | grep -qiE "nan|inf"; then echo "FAIL: non-finite losses"; cat "$work/log.csv"; exit 1; fi
"$cpu" train "${small[@]}" --iters 8 --resume "$work" 2> "$work.cpu.txt" ||
  { cat "$work.cpu.txt"; echo "FAIL: the CPU tool did not resume the CUDA checkpoint"; exit 1; }
grep -q "resumed from .* at step 6" "$work.cpu.txt" || { cat "$work.cpu.txt"; echo "FAIL: no resume at step 6"; exit 1; }
rows=$(tail -n +2 "$work/log.csv" | wc -l)
[ "$rows" -eq 8 ] || { echo "FAIL: $rows log rows after the resume, expected 8"; exit 1; }
model="$work/checkpoint.safetensors"
img="$work/img"
mkdir -p "$img"
"$cpu" eval --model "$model" --synthetic --count 8 --num-display 2 --out "$work/eval_cpu" > "$work/eval_cpu.txt" 2>&1 ||
  { cat "$work/eval_cpu.txt"; echo "FAIL: CPU eval"; exit 1; }
"$emu" eval --model "$model" --synthetic --count 8 --num-display 2 --device cuda --math fp32 --out "$work/eval_cuda" \
  > "$work/eval_cuda.txt" 2>&1 || { cat "$work/eval_cuda.txt"; echo "FAIL: eval --device cuda"; exit 1; }
# the PSNRs (dB) of both within 0.01 dB; the leakage probe may differ (a logistic regression on
# 8 codes) and is not compared
py=$(command -v python3 || true)
if [ -n "$py" ]; then
  "$py" - "$work/eval_cpu/eval.json" "$work/eval_cuda/eval.json" <<'PYEOF' || exit 1
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert b.get("device") == "cuda", "eval.json of --device cuda does not say so"
bad = [k for k in a["psnr"] if abs(a["psnr"][k] - b["psnr"][k]) > 0.01]
if bad:
    print("FAIL: eval --device cuda PSNR differs from the CPU:", {k: (a["psnr"][k], b["psnr"][k]) for k in bad})
    sys.exit(1)
print("eval psnr cpu vs cuda:", {k: round(a["psnr"][k] - b["psnr"][k], 5) for k in a["psnr"]})
PYEOF
fi
cp "$work/eval_cpu/transfer_grid.png" "$img/grid.png"  # any RGB image will do as input
for dev in cpu cuda; do
  bin=$cpu; [ $dev = cuda ] && bin=$emu
  extra=(); [ $dev = cuda ] && extra=(--math fp32)
  "$bin" remove --model "$model" -o "$work/remove_$dev.png" --device $dev "${extra[@]}" "$img/grid.png" \
    > "$work/remove_$dev.txt" 2>&1 || { cat "$work/remove_$dev.txt"; echo "FAIL: remove --device $dev"; exit 1; }
  "$bin" transfer --model "$model" -o "$work/transfer_$dev.png" --device $dev "${extra[@]}" --base "$img/grid.png" \
    --guide "$img/grid.png" > "$work/transfer_$dev.txt" 2>&1 || { cat "$work/transfer_$dev.txt"; echo "FAIL: transfer --device $dev"; exit 1; }
done
# the outputs' numbers are compared through eval's PSNRs above; here: both devices wrote a PNG
for what in remove transfer; do
  for dev in cpu cuda; do
    [ -s "$work/${what}_$dev.png" ] || { echo "FAIL: no $what output from --device $dev"; exit 1; }
  done
done
echo "ok: 6 CUDA-graph steps (emulated), resumed on the CPU to step 8; eval / remove / transfer with --device cuda"
