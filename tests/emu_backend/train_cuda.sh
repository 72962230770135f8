#!/usr/bin/env bash
# emu.cli.train_cuda: `disco train --device cuda` (BF16, the step as a CUDA graph) on the
# emulated backend for 6 steps, then the CPU tool resumes its checkpoint for 2 more.
#   train_cuda.sh EMU_DISCO CPU_DISCO WORKDIR
set -euo pipefail
emu=$1 cpu=$2 work=$3
rm -rf "$work"
small=(--synthetic --resize 64 --base-channels 8 --code-channels 32 --sep 4 --disc-hidden 32 --bs 2
       --num-display 2 --out "$work")
"$emu" train "${small[@]}" --iters 6 --save-iter 3 --display-iter 3 --device cuda --math bf16 --cuda-graph \
  2> "$work.cuda.txt" || { cat "$work.cuda.txt"; echo "FAIL: disco train --device cuda"; exit 1; }
if grep -q "capture failed" "$work.cuda.txt"; then cat "$work.cuda.txt"; echo "FAIL: the CUDA graph fell back"; exit 1; fi
rows=$(tail -n +2 "$work/log.csv" | wc -l)
[ "$rows" -eq 6 ] || { echo "FAIL: $rows log rows, expected 6"; exit 1; }
if tail -n +2 "$work/log.csv" | grep -qiE "nan|inf"; then echo "FAIL: non-finite losses"; cat "$work/log.csv"; exit 1; fi
"$cpu" train "${small[@]}" --iters 8 --resume "$work" 2> "$work.cpu.txt" ||
  { cat "$work.cpu.txt"; echo "FAIL: the CPU tool did not resume the CUDA checkpoint"; exit 1; }
grep -q "resumed from .* at step 6" "$work.cpu.txt" || { cat "$work.cpu.txt"; echo "FAIL: no resume at step 6"; exit 1; }
rows=$(tail -n +2 "$work/log.csv" | wc -l)
[ "$rows" -eq 8 ] || { echo "FAIL: $rows log rows after the resume, expected 8"; exit 1; }
echo "ok: 6 CUDA-graph steps (emulated), resumed on the CPU to step 8"
