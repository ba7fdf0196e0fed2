#!/usr/bin/env bash
# The whole test suite: installs ffmpeg and clang if missing, vets, runs every test
# (the engine under the race detector) and each fuzz target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-ffmpeg.sh
# clang: the CUDA syntax check of both kernel sets (trainer/cuda/cudatest) runs here, never skips.
if ! command -v clang >/dev/null 2>&1; then
	echo "clang not found: installing it with apt-get" >&2
	SUDO=""
	if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang >/dev/null
fi
export PIPELINE_REQUIRE_CLANG=1
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
