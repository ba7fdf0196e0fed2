#!/usr/bin/env bash
# The main job: install ffmpeg if missing, build, and run every stage of the
# embedded default pipeline.yaml (tiny synthetic videos, CPU, a few minutes).
# Extra arguments go to `pipeline run` (e.g. --force, --dry-run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-ffmpeg.sh
mkdir -p bin
CGO_ENABLED=0 go build -o bin/pipeline ./cmd/pipeline
./bin/pipeline run "$@"
echo
echo "outputs under work/default/ (sample GIF: work/default/sample/)"
