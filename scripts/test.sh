#!/usr/bin/env bash
# The whole test suite: installs ffmpeg and clang if missing, vets, checks that
# imports point down, runs every test of every package once, under the race
# detector, and each fuzz target briefly.
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
# Imports point down: only stages and the commands (cmd/..., cmd/pipeline-beam's
# beamrun package included; and the engine's own test helper) import the
# engine, and the trainer, frames and shards link neither it nor the YAML parser.
mod=github.com/timelapse-ml/pipeline
importers=$(go list -f '{{.ImportPath}}: {{join .Imports " "}}' ./... | grep -E " $mod/pipeline( |\$)" | cut -d: -f1 |
	grep -vxE -e "$mod/(stages|pipeline/pipelinetest)" -e "$mod/cmd/.*" || true)
if [ -n "$importers" ]; then echo "these packages import the engine: $importers" >&2; exit 1; fi
if go list -deps ./trainer/... ./frames ./shards | grep -E "^($mod/pipeline|go.yaml.in/yaml/v3)\$"; then
	echo "the trainer, frames or shards link the engine or the YAML parser (above)" >&2; exit 1
fi
# The GPU tests run on a GPU machine; here they must at least compile.
go vet -tags gpu ./trainer/cuda/... ./trainer/gpu/...
# Every package under the race detector (needs cgo: gcc is on Go's Debian
# images): the loader, the feeder and the frames and pack workers are the
# concurrent code. There is no second full pass without -race: that would only
# repeat the slow training and extraction tests.
go test -race -shuffle=on -timeout 40m ./...
# The few heaviest numeric tests skip themselves under -race
# (internal/testenv.SkipUnderRace: single-goroutine arithmetic, 10-30x slower
# there); their packages, found by their import of testenv, run again without it.
heavy=$(go list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... |
	grep " $mod/internal/testenv" | cut -d' ' -f1 | grep -vx "$mod/internal/testenv" || true)
if [ -n "$heavy" ]; then go test -shuffle=on -timeout 30m $heavy; fi
# Fuzz targets, a few seconds each. Budgets are counts, not durations: a
# duration can end the run while an input is being minimised, which go test
# reports as a failure ("context deadline exceeded").
fuzz() { go test "$1" -run '^$' -fuzz "^$2\$" -fuzztime "$3" -fuzzminimizetime 200x; }
fuzz ./pipeline FuzzLoad "${FUZZ_LOAD:-60000x}"
fuzz ./shards FuzzOpenShard "${FUZZ_SHARD:-20000x}"
fuzz ./trainer/weights FuzzSafetensorsHeader "${FUZZ_SAFETENSORS:-50000x}"
fuzz ./trainer/weights FuzzPickle "${FUZZ_PICKLE:-50000x}"
