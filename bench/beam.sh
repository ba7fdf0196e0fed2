#!/usr/bin/env bash
# 64 synthetic videos through ingest, frames and pack: the local engine vs
# Beam on in-process prism, in the same binary (pipeline-beam run
# --runner=local|prism), each from an empty workdir, on this machine's cores.
# Usage: bench/beam.sh [COUNT]   (prints a table)
set -euo pipefail
count=${1:-64}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/pipeline" "$root/cmd/pipeline"
go build -o "$tmp/pipeline-beam" "$root/cmd/pipeline-beam"
cat > "$tmp/videos.yaml" <<YAML
workdir: $tmp/gen
stages:
  synth:
    kind: synth
    params: {count: $count, width: 192, height: 128, fps: 10, seconds: 10, seed: 5}
YAML
"$tmp/pipeline" run "$tmp/videos.yaml" --quiet >/dev/null
for runner in local prism; do
  cat > "$tmp/$runner.yaml" <<YAML
workdir: $tmp/work-$runner
stages:
  ingest:
    kind: ingest
    params: {folder: $tmp/gen/synth}
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 64}
  pack:
    kind: pack
    needs: [frames]
    params: {val_fraction: 0.1}
YAML
done
printf '%-8s %8s %8s %10s\n' runner videos seconds frames/s
for runner in local prism local prism; do
  rm -rf "$tmp/work-$runner"
  start=$(date +%s.%N)
  "$tmp/pipeline-beam" run "$tmp/$runner.yaml" --runner=$runner --quiet > "$tmp/$runner.out"
  end=$(date +%s.%N)
  frames=$(grep -o '[0-9]* frames in' "$tmp/$runner.out" | head -1 | cut -d' ' -f1)
  printf '%-8s %8d %8.2f %10.1f\n' $runner $count "$(echo "$end - $start" | bc)" "$(echo "$frames / ($end - $start)" | bc -l)"
done
cmp "$tmp/work-local/pack/index.json" "$tmp/work-prism/pack/index.json" && echo "index.json identical"
for f in "$tmp"/work-local/pack/shard-*.arrow; do cmp "$f" "$tmp/work-prism/pack/$(basename "$f")"; done && echo "shards identical"
