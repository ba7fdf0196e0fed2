#!/usr/bin/env bash
# Issue 19 on the GPU machine: configs/gpu-smoke.yaml's pretrain, train and
# sample before the fix (old: smoke-old.yaml, the config as it was, with
# ema_decay 0) and after it (new: the longer pretrain, two train learning
# rates over that one pretrain), from workdirs whose synth, ingest, frames
# and pack ran on the CPU box (the GPU box has no ffmpeg). One binary (the
# fixed one, CGO_ENABLED=0): two do not fit the 64 MiB carry limit beside
# the tree. Run from the repo root with .gpu/h-speckle carried
# (pipeline-new.gz, smoke-*.yaml, work-old/); results under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/speckle-out}
mkdir -p "$OUT"
cd .gpu/h-speckle
for b in new; do gunzip -c pipeline-$b.gz > pipeline-$b && chmod +x pipeline-$b; done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
cp -a work-old work-new-a
run() { # binary variant
  local t0=$(date +%s)
  ./pipeline-$1 run smoke-$2.yaml > "$OUT/$2.log" 2>&1
  echo "$2 rc=$? $(( $(date +%s) - t0 ))s" >> "$OUT/times.txt"
  mkdir -p "$OUT/$2"
  cp work-$2/sample/sample.png work-$2/sample/sample.json work-$2/train/train.json work-$2/train/loss.png "$OUT/$2/" 2>/dev/null
  cp work-$2/pretrain/loss.png "$OUT/$2/pretrain-loss.png" 2>/dev/null
}
run new old
run new new-a
cp -a work-new-a work-new-b
run new new-b
cat "$OUT/gpu.txt" "$OUT/times.txt"
for w in old new-a new-b; do
  echo "== $w"; grep -h '"val_ratio"\|"val_loss"\|"baseline_val_loss"' "$OUT/$w/train.json"
  grep -h 'hf\|change' "$OUT/$w/sample.json" 2>/dev/null
  grep -h '  pretrain:\|  train:\|  sample:\|quality' "$OUT/$w.log" | tail -4
done
