#!/usr/bin/env bash
# Issue 19 ratio search on the GPU machine: the default pipeline's train
# stage (device cuda) over one cached default workdir, several variants at
# once. Rows under $OUT/rows.txt; temporal weights per variant under $OUT.
# Beside this script (copied with ratio-variant.sh and pipeline.yaml into a
# carried .gpu/<you>/ folder): pipeline.xz (`CGO_ENABLED=0 go build
# -ldflags="-s -w" ./cmd/pipeline`, xz) and base.tar.xz (a finished default
# workdir without train/ and sample/; the GPU box has no ffmpeg).
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/ratio-out}
mkdir -p "$OUT" /tmp/ratio-base
xz -dc pipeline.xz > /tmp/pipeline && chmod +x /tmp/pipeline
tar -C /tmp/ratio-base -xJf base.tar.xz
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
export PIPELINE=/tmp/pipeline RATIO_YAML=$PWD/pipeline.yaml RATIO_ARGS="--stage train" RATIO_OUT=/tmp/ratio GOMAXPROCS=2
v() { # name params...
  timeout 105 bash ./ratio-variant.sh /tmp/ratio-base "$@" 'device: cuda' >> "$OUT/rows.txt" 2>> "$OUT/err.txt"
  echo "$1 rc=$?" >> "$OUT/rc.txt"
  mkdir -p "$OUT/$1"; cp /tmp/ratio/$1/work/train/{train.json,temporal.safetensors,metrics.jsonl} "$OUT/$1/" 2>/dev/null
  tail -30 /tmp/ratio/$1/run.log > "$OUT/$1/run-tail.log" 2>/dev/null
}
v uniform &
v minsnr-mix50 'timestep_sampling: min_snr' 'timestep_uniform_fraction: 0.5' &
v minsnr-mix25 'timestep_sampling: min_snr' 'timestep_uniform_fraction: 0.25' &
v snrcap5 'timestep_sampling: snr_cap' &
v snrcap20 'timestep_sampling: snr_cap' 'min_snr_gamma: 20' &
v wd0 'weight_decay: 0' &
v minsnr-mix50-lr1e-3 'timestep_sampling: min_snr' 'timestep_uniform_fraction: 0.5' 'lr: 1.0e-3' &
v snrcap5-f16b1 'timestep_sampling: snr_cap' 'frames_length: 16' 'batch: 1' &
v uniform-800 'steps: 800' 'validate_every: 800' &
v minsnr-mix50-800 'timestep_sampling: min_snr' 'timestep_uniform_fraction: 0.5' 'steps: 800' 'validate_every: 800' &
wait
cat "$OUT/gpu.txt" "$OUT/rc.txt"; tail -5 "$OUT/err.txt"
sort "$OUT/rows.txt"
