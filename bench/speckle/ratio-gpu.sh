#!/usr/bin/env bash
# Issue 19 ratio search on the GPU machine: the default pipeline's train
# stage (device cuda) over one cached default workdir, several variants at
# once. Rows under $OUT/rows.txt; run logs and metrics per variant under $OUT.
#
#   bash ratio-gpu.sh [VARIANTS]
#
# VARIANTS (default ratio-variants.txt beside this script): one variant a
# line, `NAME ENV 'param: value'...` (ENV: VAR=value[,VAR=value] set for the
# run, or - for none); ratio3-variants.txt's EXP_* variables are read only by
# a binary built with ratio3-knobs.patch applied (experiment knobs, not on
# main: `git apply` it on commit 3aa9ba4). Beside this script (copied with
# ratio-variant.sh, pipeline.yaml and the list into a carried .gpu/<you>/
# folder): pipeline.xz (`CGO_ENABLED=0 go build -ldflags="-s -w"
# ./cmd/pipeline`, xz) and base.tar.xz (a finished default workdir without
# train/ and sample/; the GPU box has no ffmpeg).
set -uo pipefail
cd "$(dirname "$0")"
list=${1:-ratio-variants.txt}
OUT=${OUT:-/tmp/ratio-out}
mkdir -p "$OUT" /tmp/ratio-base
xz -dc pipeline.xz > /tmp/pipeline && chmod +x /tmp/pipeline
tar -C /tmp/ratio-base -xJf base.tar.xz
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
export PIPELINE=/tmp/pipeline RATIO_YAML=$PWD/pipeline.yaml RATIO_ARGS="--stage train" RATIO_OUT=/tmp/ratio GOMAXPROCS=2
v() { # name env params...
  local name=$1 envs=${2//,/ }; shift 2
  [[ $envs == - ]] && envs=
  ( SECONDS=0; env $envs timeout 125 bash ./ratio-variant.sh /tmp/ratio-base "$name" "$@" 'device: cuda' >> "$OUT/rows.txt" 2>> "$OUT/err.txt"
    echo "$name rc=$? ${SECONDS}s env=$envs" >> "$OUT/rc.txt"
    mkdir -p "$OUT/$name"; cp /tmp/ratio/$name/work/train/{train.json,metrics.jsonl} "$OUT/$name/" 2>/dev/null
    tail -30 /tmp/ratio/$name/run.log > "$OUT/$name/run-tail.log" 2>/dev/null ) &
}
while read -r line; do
  [[ -z $line || $line == \#* ]] && continue
  eval "v $line"
done < "$list"
wait
cat "$OUT/gpu.txt"; sort "$OUT/rc.txt"; tail -5 "$OUT/err.txt"
sort "$OUT/rows.txt"
