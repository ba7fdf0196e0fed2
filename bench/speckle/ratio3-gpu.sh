#!/usr/bin/env bash
# h-ratio3 (issue 19): train variants of the default over one cached default workdir on the GPU, all at once.
# The EXP_* variables are read by bench/speckle/ratio3-knobs.patch (experiment
# knobs, not on main: `git apply` it on commit 3aa9ba4 and build that binary).
set -uo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/ratio-out}
mkdir -p "$OUT" /tmp/ratio-base
xz -dc pipeline.xz > /tmp/pipeline && chmod +x /tmp/pipeline
tar -C /tmp/ratio-base -xJf base.tar.xz
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
export PIPELINE=/tmp/pipeline RATIO_YAML=$PWD/pipeline.yaml RATIO_ARGS="--stage train" RATIO_OUT=/tmp/ratio GOMAXPROCS=2
v() { # name env params...
  local name=$1 envs=$2; shift 2
  ( SECONDS=0; env $envs timeout 125 bash ./ratio-variant.sh /tmp/ratio-base "$name" "$@" 'device: cuda' >> "$OUT/rows.txt" 2>> "$OUT/err.txt"
    echo "$name rc=$? ${SECONDS}s env=$envs" >> "$OUT/rc.txt"
    mkdir -p "$OUT/$name"; cp /tmp/ratio/$name/work/train/{train.json,metrics.jsonl} "$OUT/$name/" 2>/dev/null
    tail -8 /tmp/ratio/$name/run.log > "$OUT/$name/run-tail.log" 2>/dev/null ) &
}
v shipped X=1
v clean0 EXP_CLEAN0=1
v strat EXP_STRAT=1
v b2-099 EXP_B2=0.99
v proj5 EXP_LRS=temporal_attn.proj=5
v attn4 EXP_LRS=temporal_attn=4
v tconv3 EXP_LRS=temporal_conv=3
v emaf3 EXP_EMAF=3
v const-emaf2 EXP_EMAF=2 'schedule: constant'
v minf0 EXP_MINF=0
v clip0 X=1 'grad_clip: 0'
v tpow15 EXP_TPOW=1.5
v b2-095-lr1e-3 EXP_B2=0.95 'lr: 1.0e-3'
wait
cat "$OUT/gpu.txt"; sort "$OUT/rc.txt"; tail -5 "$OUT/err.txt"
sort "$OUT/rows.txt"
