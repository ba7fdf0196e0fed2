#!/usr/bin/env bash
# The frames stage's extraction against the recipe's sequential shell loop
# and the decode floor, on synth videos (rendered once and kept in $DIR).
#
#   bash bench/frames.sh [-videos 16] [-rounds 1] [-workers 0]
#
# DIR (default /tmp/pipeline-bench-frames) holds the videos and outputs.
# Needs ffmpeg, ffprobe and bc. Prints a markdown table for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${DIR:-/tmp/pipeline-bench-frames}"
mkdir -p "$DIR"
go build -o "$DIR/framesbench" ./bench/framesbench
exec "$DIR/framesbench" -dir "$DIR" "$@"
