#!/usr/bin/env bash
# Full-size weight loading (issue 14): writes an SD-1.5 single file at the real
# shapes with random values (UNet + VAE + CLIP text encoder, original names),
# float16 and float32, loads each through weights.Open, reading every tensor
# into float32 (or float16) destination buffers, and prints load time and peak
# resident memory (VmHWM of the loading process) against the loaded bytes.
# The generated files (2.1 + 4.3 GB) go to a temporary folder, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/weights-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/weights.test" ./trainer/weights
run() { (cd trainer/weights && env "$@" "$dir/weights.test" -test.run '^TestFullSizeLoad$' | grep -v '^PASS$'); }
run WEIGHTS_BENCH_GEN="$dir/sd15-f16.safetensors,F16"
run WEIGHTS_BENCH_GEN="$dir/sd15-f32.safetensors,F32"
# the floor: reading the file once (cat to /dev/null), just before each load
floor() { local s=$(date +%s.%N); cat "$1" >/dev/null; echo "floor: cat $(basename "$1") $(echo "$(date +%s.%N) - $s" | bc) s"; }
echo "| file | size | destination | loaded | load time | peak RSS | peak / loaded | RSS before |"
echo "|---|---|---|---|---|---|---|---|"
for spec in sd15-f16.safetensors,f16 sd15-f16.safetensors,f32 sd15-f32.safetensors,f32; do
	floor "$dir/${spec%,*}" >&2
	run WEIGHTS_BENCH_LOAD="$dir/$spec"
done
