#!/usr/bin/env bash
# Synthetic-video throughput (package synth): frames rendered (Go) and
# encoded (ffmpeg) per second, for the synth stage's default set and its
# parts, printed as a markdown table for bench/RESULTS.md.
#
#   bash bench/synth.sh            # the table (about a minute on 2 idle cores)
#   BENCHTIME=3x bash bench/synth.sh   # more runs of the whole-video benchmarks
#
# frames/s is wall clock (other load on the machine lowers it); cpu-ms/frame
# is CPU time of this process and its ffmpeg children per frame, which load
# does not inflate.
set -euo pipefail
cd "$(dirname "$0")/.."

raw=$(go test ./synth -run '^$' -bench 'RenderFrames' -benchtime 3s -timeout 30m
	go test ./synth -run '^$' -bench 'Render$|RenderSet' -benchtime "${BENCHTIME:-1x}" -timeout 30m)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "ffmpeg: $(ffmpeg -version | head -1 | cut -d' ' -f1-3); load average before/after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| benchmark | frames/s | CPU ms/frame |"
echo "|---|---:|---:|"
echo "$raw" | awk '/^Benchmark/ {
	name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
	fps = ""; cpu = ""
	for (i = 2; i < NF; i++) {
		if ($(i+1) == "frames/s") fps = $i
		if ($(i+1) == "cpu-ms/frame") cpu = $i
	}
	printf "| %s | %.1f | %.2f |\n", name, fps, cpu
}'
