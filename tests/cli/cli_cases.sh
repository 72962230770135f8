#!/usr/bin/env bash
# Command-line tests of the `disco` tool (registered by tests/cli/cli_tests.cmake).
#
#   cli_cases.sh DISCO CASE SCRATCH [SHARED]
#
# DISCO    the disco binary
# CASE     one of the cases below ("setup" makes the assets the others share)
# SCRATCH  a folder for the tests' files (SCRATCH/assets, SCRATCH/<case>)
# SHARED   the shared data folder (for SHARED/data/facemask); cases needing it exit 77
#          (skipped) when it is absent
#
# Failure cases check: non-zero exit status, exactly one line on stderr starting
# "disco: error:" and it is the last line, no blank lines or other error noise on stderr,
# and the key words (file name, option, expected value) in that line.
set -u

DISCO=${1:?usage: cli_cases.sh DISCO CASE SCRATCH [SHARED]}
CASE=${2:?case}
SCRATCH=${3:?scratch folder}
SHARED=${4:-}
ASSETS=$SCRATCH/assets
WORK=$SCRATCH/$CASE
# The small config of these tests; ARCH without --resize / --sep for cases that change them
# (an option given twice is a usage error).
ARCH=(--base-channels 8 --code-channels 32 --disc-hidden 32 --bs 2 --num-display 2 --loader-threads 1)
SMALL=(--resize 64 --sep 4 "${ARCH[@]}")
FACEMASK=${SHARED:+$SHARED/data/facemask}

die() {
  echo "FAIL [$CASE]: $*" >&2
  if [[ -f $WORK/err.txt ]]; then
    echo "---- stderr of the last disco run ----" >&2
    cat "$WORK/err.txt" >&2
    echo "--------------------------------------" >&2
  fi
  exit 1
}
skip() {
  echo "SKIP [$CASE]: $*"
  exit 77
}

# run ARGS...: run disco, stdout -> $WORK/out.txt, stderr -> $WORK/err.txt, status -> $RC
run() {
  echo "+ disco $*" >&2
  "$DISCO" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" </dev/null
  RC=$?
}
ok() {
  run "$@"
  [[ $RC -eq 0 ]] || die "expected success, got exit status $RC: disco $*"
}
# fail_with KEY...: the last run failed with one clear error line holding every KEY
fail_with() {
  [[ $RC -ne 0 ]] || die "expected a non-zero exit status"
  [[ $RC -lt 128 ]] || die "disco died from a signal (exit status $RC)"
  local n
  n=$(grep -c '^disco: error:' "$WORK/err.txt")
  [[ $n -eq 1 ]] || die "expected exactly one 'disco: error:' line on stderr, found $n"
  local last
  last=$(tail -n 1 "$WORK/err.txt")
  [[ $last == "disco: error:"* ]] || die "the error line is not the last line of stderr"
  if grep -q '^[[:space:]]*$' "$WORK/err.txt"; then die "blank line(s) on stderr"; fi
  if grep -v '^disco: error:' "$WORK/err.txt" | grep -qiE 'error|terminate|abort|exception|what\(\)'; then
    die "error noise on stderr besides the error line"
  fi
  local k
  for k in "$@"; do
    [[ $last == *"$k"* ]] || die "the error line does not mention '$k': $last"
  done
  echo "ok: $last"
}
no_temp_files() {  # no half-written files (atomic writes leave <name>.tmp.<pid>.<n> on failure)
  local t
  t=$(find "$1" -name '*.tmp*' | head -n 5)
  [[ -z $t ]] || die "temporary files left in $1: $t"
}
is_png() {
  [[ -s $1 ]] || die "no output file $1"
  [[ $(head -c 8 "$1" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || die "$1 is not a PNG"
}
# log_steps FILE: the step column of a training log, space separated
log_steps() { tail -n +2 "$1" | cut -d, -f1 | tr '\n' ' ' | sed 's/ $//'; }
# meta FILE KEY: a __metadata__ value of a safetensors file (the header is JSON text after 8 bytes)
meta() {
  head -c 200000 "$1" | tail -c +9 | tr ',' '\n' | grep -ao "\"$2\":\"[^\"]*\"" | head -n 1 | cut -d'"' -f4
}

# The shared assets: a 1-step model of the small config (sep 4) and a folder data set of
# PNGs written by disco itself (trainA trainB testA testB, 5 images each).
make_assets() {
  local tmp=$SCRATCH/assets.tmp.$$
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local saved_work=$WORK
  WORK=$tmp
  ok train --synthetic --synthetic-count 64 "${SMALL[@]}" --iters 1 --out "$tmp/model"
  is_png "$tmp/model/grid_0000001.png"
  local d i
  for d in trainA trainB testA testB; do
    mkdir -p "$tmp/data/$d"
    for i in 0 1 2 3; do cp "$tmp/model/grid_0000001.png" "$tmp/data/$d/img$i.png"; done
    cp "$tmp/model/removal_0000001.png" "$tmp/data/$d/img4.png"
  done
  rm -f "$tmp/out.txt" "$tmp/err.txt"
  WORK=$saved_work
  rm -rf "$ASSETS"
  mv "$tmp" "$ASSETS"
}
need_assets() {
  [[ -f $ASSETS/model/checkpoint.safetensors ]] && return
  mkdir -p "$SCRATCH"
  # ctest runs "setup" first (a fixture); this covers running one case by hand
  exec 9>"$SCRATCH/assets.lock"
  flock 9
  [[ -f $ASSETS/model/checkpoint.safetensors ]] || make_assets
  flock -u 9
}
# copy_data DEST: a private copy of the PNG data set
copy_data() { cp -r "$ASSETS/data" "$1"; }

rm -rf "$WORK"
mkdir -p "$WORK"
[[ -x $DISCO ]] || die "no disco binary at '$DISCO'"
[[ $CASE == setup ]] || need_assets
MODEL=$ASSETS/model

case $CASE in
setup)
  make_assets
  echo "assets in $ASSETS"
  ;;

# ---- bad input: one clear line, non-zero status ---------------------------------------
bad_missing_folder)
  run train --dataroot "$WORK/does_not_exist" "${SMALL[@]}" --iters 1 --out "$WORK/out"
  fail_with "--dataroot" "$WORK/does_not_exist" "not found"
  ;;
bad_empty_domain)
  copy_data "$WORK/data"
  rm -f "$WORK/data/trainA/"*
  run train --dataroot "$WORK/data" "${SMALL[@]}" --iters 1 --out "$WORK/out"
  fail_with "$WORK/data/trainA" "no images"
  ;;
bad_corrupt_image)
  copy_data "$WORK/data"
  echo "this is not an image" >"$WORK/data/trainA/img2.png"
  # 5 images, batch 2: img2 comes up within the first three batches of the epoch
  run train --dataroot "$WORK/data" "${SMALL[@]}" --iters 4 --save-iter 1 --out "$WORK/out"
  fail_with "$WORK/data/trainA/img2.png" "cannot decode"
  no_temp_files "$WORK/out"
  ;;
bad_truncated_image)
  copy_data "$WORK/data"
  head -c 3000 "$ASSETS/data/trainB/img0.png" >"$WORK/data/trainB/img3.png"
  run train --dataroot "$WORK/data" "${SMALL[@]}" --iters 4 --save-iter 1 --out "$WORK/out"
  fail_with "$WORK/data/trainB/img3.png" "truncated PNG"
  no_temp_files "$WORK/out"
  ;;
bad_truncated_jpeg)
  [[ -n $FACEMASK && -d $FACEMASK/with_mask ]] || skip "no facemask data in '${SHARED}'"
  mkdir -p "$WORK/a" "$WORK/b"
  jpg=$(find "$FACEMASK/with_mask" -name '*.jpg' | sort | head -n 1)
  cp "$jpg" "$WORK/a/good.jpg"
  size=$(stat -c %s "$jpg")
  head -c $((size / 2)) "$jpg" >"$WORK/a/half.jpg"
  cp "$(find "$FACEMASK/without_mask" -name '*.jpg' | sort | head -n 1)" "$WORK/b/b.jpg"
  run train --domain-a "$WORK/a" --domain-b "$WORK/b" "${SMALL[@]}" --iters 2 --out "$WORK/out"
  fail_with "$WORK/a/half.jpg" "truncated JPEG"
  ;;
bad_resolution)
  run train --synthetic --synthetic-count 64 --resize 100 --iters 1 --out "$WORK/out"
  fail_with "--resize" "100" "64, 128 or 256"
  ;;
bad_resume_config)
  # the assets' checkpoint has sep 4; resuming it as a sep 8 model must fail
  run train --synthetic --synthetic-count 64 --resize 64 --sep 8 "${ARCH[@]}" --iters 2 --resume "$MODEL" \
    --out "$WORK/out"
  fail_with "$MODEL/checkpoint.safetensors" "another model config" "sep 4 (model has 8)"
  run train --synthetic --synthetic-count 64 --resize 128 --sep 4 "${ARCH[@]}" --iters 2 \
    --resume "$MODEL/checkpoint.safetensors" --out "$WORK/out"
  fail_with "resolution 64 (model has 128)"
  [[ ! -e $WORK/out/checkpoint.safetensors ]] || die "a checkpoint was written after a failure"
  ;;
bad_step_config)
  run step --weights "$MODEL/weights.safetensors" --batch "$MODEL/weights.safetensors" --out "$WORK/r.safetensors" \
    --resolution 64 --base-channels 8 --code-channels 32 --sep 8
  fail_with "$MODEL/weights.safetensors" "sep 4 (model has 8)"
  # the right config but a batch file without 'a' / 'b'
  run step --weights "$MODEL/weights.safetensors" --batch "$MODEL/weights.safetensors" --out "$WORK/r.safetensors" \
    --resolution 64 --base-channels 8 --code-channels 32 --sep 4 --disc-hidden 32
  fail_with "no tensor 'a'"
  run step --weights "$MODEL/weights.safetensors" --batch "$MODEL/weights.safetensors" --out "$WORK/r.safetensors" \
    --resolution 64 --base-channels 8 --code-channels 32 --sep 4 --disc-hidden 32 --math tf32
  fail_with "--math" "--device cuda only"
  [[ ! -e $WORK/r.safetensors ]] || die "a result file was written after a failure"
  ;;
bad_truncated_checkpoint)
  size=$(stat -c %s "$MODEL/checkpoint.safetensors")
  mkdir -p "$WORK/ck"
  head -c $((size / 2)) "$MODEL/checkpoint.safetensors" >"$WORK/ck/checkpoint.safetensors"
  run train --synthetic --synthetic-count 64 "${SMALL[@]}" --iters 2 --resume "$WORK/ck" --out "$WORK/out"
  fail_with "$WORK/ck/checkpoint.safetensors"
  size=$(stat -c %s "$MODEL/weights.safetensors")
  head -c $((size - 10)) "$MODEL/weights.safetensors" >"$WORK/w.safetensors"
  run remove --model "$WORK/w.safetensors" -o "$WORK/r.png" "$ASSETS/data/testA/img0.png"
  fail_with "$WORK/w.safetensors"
  [[ ! -e $WORK/r.png ]] || die "an output image was written after a failure"
  ;;
bad_model_file)
  run transfer --model "$ASSETS/data/testA/img0.png" -o "$WORK/t.png" --base "$ASSETS/data/testB/img0.png" \
    --guide "$ASSETS/data/testA/img0.png"
  fail_with "$ASSETS/data/testA/img0.png"
  run transfer --model "$WORK/missing.safetensors" -o "$WORK/t.png" --base "$ASSETS/data/testB/img0.png" \
    --guide "$ASSETS/data/testA/img0.png"
  fail_with "--model" "$WORK/missing.safetensors"
  run train --synthetic "${SMALL[@]}" --iters 2 --resume "$WORK/nothing_here" --out "$WORK/out"
  fail_with "--resume" "nothing_here"
  ;;
bad_output_folder)
  run transfer --model "$MODEL/weights.safetensors" -o "$WORK/no/such/dir/t.png" \
    --base "$ASSETS/data/testB/img0.png" --guide "$ASSETS/data/testA/img0.png"
  fail_with "$WORK/no/such/dir"
  ;;
bad_options)
  run train --no-such-option 3
  fail_with "--no-such-option"
  [[ $RC -eq 2 ]] || die "usage errors exit with status 2, got $RC"
  run transfer -o "$WORK/t.png" --base "$ASSETS/data/testB/img0.png" --guide "$ASSETS/data/testA/img0.png"
  fail_with "--model"
  run remove --model "$MODEL/weights.safetensors" -o "$WORK/r.png" "$WORK/missing.png"
  fail_with "$WORK/missing.png"
  run train --synthetic "${SMALL[@]}" --iters 1 --recon-loss l3 --out "$WORK/out"
  fail_with "--recon-loss" "l3"
  run train --synthetic --resize 64 --sep 32 "${ARCH[@]}" --iters 1 --out "$WORK/out"
  fail_with "sep 32" "code_channels 32"
  run train --synthetic --sep 4 --sep 5 "${ARCH[@]}" --iters 1 --out "$WORK/out"
  fail_with "--sep"
  run train --synthetic "${SMALL[@]}" --iters 1 --device tpu --out "$WORK/out"
  fail_with "--device" "tpu"
  run train --synthetic "${SMALL[@]}" --iters 1 --math bf16 --out "$WORK/out"
  fail_with "--math" "--device cuda only"
  run train --synthetic "${SMALL[@]}" --iters 1 --cuda-graph --out "$WORK/out"
  fail_with "--cuda-graph" "--device cuda only"
  run train --synthetic "${SMALL[@]}" --iters 1 --no-cuda-graph --out "$WORK/out"
  fail_with "--no-cuda-graph" "--device cuda only"
  run train --synthetic "${SMALL[@]}" --iters 1 --device cuda --math fp16 --out "$WORK/out"
  fail_with "--math" "fp16"
  run train --synthetic "${SMALL[@]}" --iters 1 --device cuda --conv-algo fft --out "$WORK/out"
  fail_with "--conv-algo" "fft"
  run remove --model "$MODEL/weights.safetensors" -o "$WORK/r.png" --math bf16 "$ASSETS/data/testA/img0.png"
  fail_with "--math" "--device cuda only"
  run eval --model "$MODEL/weights.safetensors" --device gpu --out "$WORK/ev"
  fail_with "--device" "gpu"
  run train "${SMALL[@]}" --iters 1 --out "$WORK/out"
  fail_with "no data given"
  ;;
bad_celeba_attribute)
  mkdir -p "$WORK/img"
  for i in 1 2 3 4; do cp "$ASSETS/data/trainA/img0.png" "$WORK/img/00000$i.png"; done
  printf '4\nEyeglasses Smiling Male\n000001.png 1 -1 1\n000002.png -1 1 1\n000003.png 1 1 -1\n000004.png -1 -1 -1\n' \
    >"$WORK/attrs.txt"
  run split-celeba --images "$WORK/img" --attributes "$WORK/attrs.txt" --config custom:Not_An_Attribute \
    --out "$WORK/split"
  fail_with "Not_An_Attribute" "Eyeglasses Smiling Male"
  run split-celeba --images "$WORK/img" --attributes "$WORK/attrs.txt" --config sunglasses --out "$WORK/split"
  fail_with "sunglasses" "custom:<Attribute_Name>"
  run split-celeba --images "$WORK/img" --attributes "$WORK/missing_attrs.txt" --config glasses --out "$WORK/split"
  fail_with "$WORK/missing_attrs.txt"
  run split-celeba --images "$WORK/no_images" --attributes "$WORK/attrs.txt" --config glasses --out "$WORK/split"
  fail_with "--images" "$WORK/no_images"
  ;;
bad_celeba_malformed)
  mkdir -p "$WORK/img"
  printf '3\nEyeglasses Smiling\n000001.png 1 -1\n000002.png -1 0\n000003.png 1 1\n' >"$WORK/attrs.txt"
  run split-celeba --images "$WORK/img" --attributes "$WORK/attrs.txt" --config glasses --out "$WORK/split"
  fail_with "$WORK/attrs.txt:4:" "Smiling" "000002.png" "expected 1 or -1"
  printf '3\nEyeglasses Smiling\n000001.png 1 -1\n000002.png -1\n' >"$WORK/attrs2.txt"
  run split-celeba --images "$WORK/img" --attributes "$WORK/attrs2.txt" --config glasses --out "$WORK/split"
  fail_with "$WORK/attrs2.txt:4:" "expected 3 fields"
  printf '5\nEyeglasses Smiling\n000001.png 1 -1\n' >"$WORK/attrs3.txt"
  run split-celeba --images "$WORK/img" --attributes "$WORK/attrs3.txt" --config glasses --out "$WORK/split"
  fail_with "$WORK/attrs3.txt:1:" "5 images" "lists 1"
  [[ ! -e $WORK/split/trainA.txt ]] || die "list files written after a failure"
  ;;

# ---- things that work ---------------------------------------------------------------------
celeba_split_train)
  mkdir -p "$WORK/img"
  printf '8\nEyeglasses Smiling\n' >"$WORK/attrs.txt"
  for i in 1 2 3 4 5 6 7 8; do
    cp "$ASSETS/data/trainA/img$((i % 5)).png" "$WORK/img/00000$i.png"
    echo "00000$i.png $(((i % 2) * 2 - 1)) -1" >>"$WORK/attrs.txt"
  done
  ok split-celeba --images "$WORK/img" --attributes "$WORK/attrs.txt" --config glasses --num-test 1 --out "$WORK/split"
  [[ $(wc -l <"$WORK/split/trainA.txt") -eq 3 && $(wc -l <"$WORK/split/testB.txt") -eq 1 ]] ||
    die "unexpected split sizes: $(wc -l "$WORK/split/"*.txt)"
  grep -q '^.*000001.png$' "$WORK/split/testA.txt" || die "testA.txt should hold the first A image (000001.png)"
  ok train --dataroot "$WORK/split" "${SMALL[@]}" --iters 2 --out "$WORK/out"
  [[ $(log_steps "$WORK/out/log.csv") == "0 1" ]] || die "log.csv steps: $(log_steps "$WORK/out/log.csv")"
  ;;
transfer_real)
  [[ -n $FACEMASK && -d $FACEMASK/with_mask ]] || skip "no facemask data in '${SHARED}'"
  guide=$(find "$FACEMASK/with_mask" -name '*.jpg' | sort | head -n 1)
  base=$(find "$FACEMASK/without_mask" -name '*.jpg' | sort | head -n 1)
  base2=$(find "$FACEMASK/without_mask" -name '*.jpg' | sort | sed -n 2p)
  ok transfer --model "$MODEL/weights.safetensors" --base "$base" --guide "$guide" -o "$WORK/t.png"
  is_png "$WORK/t.png"
  grep -q "wrote $WORK/t.png" "$WORK/out.txt" || die "no 'wrote' line on stdout"
  ok transfer --model "$MODEL/checkpoint.safetensors" --base "$base" "$base2" --guide "$guide" "$guide" \
    -o "$WORK/grid.png" --crop 0
  is_png "$WORK/grid.png"
  ;;
remove_real)
  [[ -n $FACEMASK && -d $FACEMASK/with_mask ]] || skip "no facemask data in '${SHARED}'"
  a=$(find "$FACEMASK/with_mask" -name '*.jpg' | sort | head -n 1)
  a2=$(find "$FACEMASK/with_mask" -name '*.jpg' | sort | sed -n 2p)
  ok remove --model "$MODEL/weights.safetensors" "$a" -o "$WORK/r.png"
  is_png "$WORK/r.png"
  ok remove --model "$MODEL/weights.safetensors" --input "$a" "$a2" -o "$WORK/grid.png" --resize-mode area
  is_png "$WORK/grid.png"
  ;;
resume)
  ok train --synthetic --synthetic-count 64 "${SMALL[@]}" --iters 3 --save-iter 1 --out "$WORK/out"
  [[ $(log_steps "$WORK/out/log.csv") == "0 1 2" ]] || die "log.csv steps after 3: $(log_steps "$WORK/out/log.csv")"
  [[ $(meta "$WORK/out/checkpoint.safetensors" step) == 3 ]] || die "checkpoint step is not 3"
  cp "$WORK/out/checkpoint.safetensors" "$WORK/step3.safetensors"
  ok train --synthetic --synthetic-count 64 "${SMALL[@]}" --iters 5 --save-iter 1 --resume "$WORK/out" --out "$WORK/out"
  grep -q "resumed from .* at step 3" "$WORK/err.txt" || die "no 'resumed ... at step 3' line"
  [[ $(log_steps "$WORK/out/log.csv") == "0 1 2 3 4" ]] || die "log.csv steps after resume: $(log_steps "$WORK/out/log.csv")"
  [[ $(head -n 1 "$WORK/out/log.csv") == step,* ]] || die "log.csv lost its header"
  [[ $(meta "$WORK/out/checkpoint.safetensors" step) == 5 ]] || die "checkpoint step is not 5"
  # resuming a finished run does nothing more
  ok train --synthetic --synthetic-count 64 "${SMALL[@]}" --iters 5 --resume "$WORK/out" --out "$WORK/out"
  [[ $(log_steps "$WORK/out/log.csv") == "0 1 2 3 4" ]] || die "log.csv changed: $(log_steps "$WORK/out/log.csv")"
  # the straight run to 5 gives the same losses (exact resume: same data, same state)
  ok train --synthetic --synthetic-count 64 "${SMALL[@]}" --iters 5 --out "$WORK/straight"
  cut -d, -f1-8 "$WORK/out/log.csv" >"$WORK/a.csv"
  cut -d, -f1-8 "$WORK/straight/log.csv" >"$WORK/b.csv"
  cmp -s "$WORK/a.csv" "$WORK/b.csv" || die "resumed and straight logs differ: $(diff "$WORK/a.csv" "$WORK/b.csv")"
  # resuming from an older checkpoint rewinds the log: rows 3 and 4 are not kept twice
  ok train --synthetic --synthetic-count 64 "${SMALL[@]}" --iters 6 --resume "$WORK/step3.safetensors" --out "$WORK/out"
  [[ $(log_steps "$WORK/out/log.csv") == "0 1 2 3 4 5" ]] ||
    die "log.csv after resuming from step 3: $(log_steps "$WORK/out/log.csv")"
  no_temp_files "$WORK"
  ;;
resume_after_failure)
  # An image goes bad while training runs (checkpoints every 2 steps, so the log is ahead of
  # the last checkpoint when it stops); fix it and resume: every step is logged exactly
  # once and nothing half-written is left behind.
  copy_data "$WORK/data"
  "$DISCO" train --dataroot "$WORK/data" "${SMALL[@]}" --iters 100000 --save-iter 2 --display-iter 100000 \
    --out "$WORK/out" >"$WORK/out.txt" 2>"$WORK/err.txt" </dev/null &
  pid=$!
  for _ in $(seq 1 600); do
    [[ -f $WORK/out/log.csv && $(wc -l <"$WORK/out/log.csv") -ge 4 ]] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  echo "garbage" >"$WORK/garbage.png"
  mv "$WORK/garbage.png" "$WORK/data/trainA/img2.png"
  # 5 images, batch 2: img2 is read again within a few batches
  for _ in $(seq 1 600); do
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  kill -0 $pid 2>/dev/null && { kill $pid; die "training did not stop on the bad image"; }
  wait $pid
  RC=$?
  fail_with "$WORK/data/trainA/img2.png" "cannot decode"
  no_temp_files "$WORK/out"
  at=$(meta "$WORK/out/checkpoint.safetensors" step)
  logged=$(tail -n +2 "$WORK/out/log.csv" | wc -l)
  [[ -n $at && $at -ge 2 && $logged -ge $at ]] || die "checkpoint at step '$at', $logged log rows"
  echo "stopped with $logged steps logged, checkpoint at step $at"
  cp "$ASSETS/data/trainA/img2.png" "$WORK/data/trainA/img2.png"
  total=$((logged + 2))
  ok train --dataroot "$WORK/data" "${SMALL[@]}" --iters $total --save-iter 2 --resume "$WORK/out" --out "$WORK/out"
  grep -q "resumed from .* at step $at" "$WORK/err.txt" || die "did not resume at step $at"
  [[ $(log_steps "$WORK/out/log.csv") == "$(seq -s ' ' 0 $((total - 1)))" ]] ||
    die "log.csv steps after resume: $(log_steps "$WORK/out/log.csv")"
  no_temp_files "$WORK/out"
  ;;
sigint)
  # Ctrl-C: a checkpoint is saved, one error line, the run can be resumed
  "$DISCO" train --synthetic --synthetic-count 64 "${SMALL[@]}" --iters 100000 --save-iter 100000 \
    --display-iter 100000 --out "$WORK/out" >"$WORK/out.txt" 2>"$WORK/err.txt" </dev/null &
  pid=$!
  for _ in $(seq 1 600); do
    [[ -f $WORK/out/log.csv && $(wc -l <"$WORK/out/log.csv") -ge 3 ]] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  kill -INT $pid 2>/dev/null || die "training ended before it could be interrupted"
  wait $pid
  RC=$?
  fail_with "interrupted"
  grep -q "checkpoint saved at step" "$WORK/err.txt" || die "no 'checkpoint saved' line"
  no_temp_files "$WORK/out"
  at=$(meta "$WORK/out/checkpoint.safetensors" step)
  [[ $at -ge 2 ]] || die "checkpoint at step '$at'"
  [[ $(tail -n +2 "$WORK/out/log.csv" | wc -l) -eq $at ]] || die "log.csv rows != checkpoint step $at"
  ok train --synthetic --synthetic-count 64 "${SMALL[@]}" --iters $((at + 1)) --resume "$WORK/out" --out "$WORK/out"
  [[ $(log_steps "$WORK/out/log.csv" | wc -w) -eq $((at + 1)) ]] || die "log.csv after resume: $(log_steps "$WORK/out/log.csv")"
  ;;
eval_synthetic)
  ok eval --model "$MODEL/weights.safetensors" --synthetic --synthetic-count 16 --count 8 --num-display 2 \
    --out "$WORK/eval"
  is_png "$WORK/eval/transfer_grid.png"
  is_png "$WORK/eval/removal_grid.png"
  for k in reconstruction_a transfer removal transfer_identity_baseline leakage_probe test_accuracy; do
    grep -q "\"$k\"" "$WORK/eval/eval.json" || die "eval.json has no '$k'"
  done
  ;;
step_runs)
  command -v python3 >/dev/null || skip "no python3 to write the batch file"
  python3 - "$WORK/b.safetensors" <<'EOF' || die "could not write the batch file"
import json, struct, sys, random
random.seed(0)
n = 2 * 3 * 64 * 64
vals = [struct.pack('<%df' % n, *[random.uniform(-1, 1) for _ in range(n)]) for _ in range(2)]
hdr = {"a": {"dtype": "F32", "shape": [2, 3, 64, 64], "data_offsets": [0, 4 * n]},
       "b": {"dtype": "F32", "shape": [2, 3, 64, 64], "data_offsets": [4 * n, 8 * n]}}
h = json.dumps(hdr).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + vals[0] + vals[1])
EOF
  ok step --weights "$MODEL/weights.safetensors" --batch "$WORK/b.safetensors" --out "$WORK/r.safetensors" \
    --resolution 64 --base-channels 8 --code-channels 32 --sep 4 --disc-hidden 32 --disc-weight 0.01
  python3 - "$WORK/r.safetensors" <<'EOF' || die "step result incomplete"
import json, struct, sys
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n])
need = ["loss.recon_a", "loss.recon_b", "loss.adv", "loss.ae", "loss.disc", "grad.ae.e1.full.0.weight",
        "grad.disc.disc.classify.2.bias", "param.decoder.main.12.weight"]
missing = [k for k in need if k not in h]
assert not missing, missing
def val(k):
    b, e = h[k]["data_offsets"]
    return struct.unpack('<f', raw[8 + n + b:8 + n + b + 4])[0]
assert val("loss.ae") > 0 and val("loss.disc") > 0
print("step result ok: loss.ae", val("loss.ae"))
EOF
  ;;
*)
  die "unknown case '$CASE'"
  ;;
esac
echo "PASS [$CASE]"
exit 0
