#!/usr/bin/env bash
# The whole test suite: installs ffmpeg if missing, vets, runs every test
# (the engine under the race detector) and each fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-ffmpeg.sh
export CGO_ENABLED=${CGO_ENABLED:-1}
go vet ./...
# The GPU tests run on a GPU machine; here they must at least compile.
go vet -tags gpu ./trainer/cuda/... ./trainer/gpu/...
# The engine and CLI under the race detector (needs cgo: gcc is on Go's Debian images).
go test -race -shuffle=on ./pipeline/... ./cmd/...
# Everything else.
go test -shuffle=on -timeout 30m ./...
# Fuzz targets, a few seconds each. Budgets are counts, not durations: a
# duration can end the run while an input is being minimised, which go test
# reports as a failure ("context deadline exceeded").
fuzz() { go test "$1" -run '^$' -fuzz "^$2\$" -fuzztime "$3" -fuzzminimizetime 200x; }
fuzz ./pipeline FuzzLoad "${FUZZ_LOAD:-60000x}"
fuzz ./shards FuzzOpenShard "${FUZZ_SHARD:-20000x}"
fuzz ./trainer/weights FuzzSafetensorsHeader "${FUZZ_SAFETENSORS:-50000x}"
fuzz ./trainer/weights FuzzPickle "${FUZZ_PICKLE:-50000x}"
