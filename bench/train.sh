#!/usr/bin/env bash
# The training half on the CPU: runs a config (default: the embedded
# pipeline.yaml) from scratch in a temporary workdir, on at most 2 cores
# (taskset), and prints, as markdown for bench/RESULTS.md, each stage's wall
# time, the training throughput and the learning result (validation loss of
# the trained video model vs the frozen backbone alone, temporal layers at
# identity, on the same clips, noise and timesteps).
#
#   bash bench/train.sh [CONFIG]
#
# Wall time is inflated by other load on the machine; the CPU seconds of the
# whole run (user+sys, ffmpeg children included) are not.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-pipeline.yaml}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/pipeline" ./cmd/pipeline
sed "s|^workdir:.*|workdir: $tmp/work|" "$cfg" > "$tmp/config.yaml"
pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 2 ]; then pin=(taskset -c 0,1); fi
start=$(date +%s.%N)
/usr/bin/env time -f "%U %S" -o "$tmp/cpu" "${pin[@]}" "$tmp/pipeline" run "$tmp/config.yaml" > "$tmp/out" 2>&1 || { tail -30 "$tmp/out"; exit 1; }
wall=$(echo "$(date +%s.%N) - $start" | bc)
read -r usr sys < "$tmp/cpu"
echo "machine: $(nproc) cores (run pinned to ${#pin[@]:+2}${pin:+ of them}), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "config: $cfg; date: $(date -u +%Y-%m-%dT%H:%MZ); load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| stage | wall |"
echo "|---|---:|"
awk '/^STAGE/ {t=1; next} t && NF >= 4 && $3 == "ran" {printf "| %s | %s |\n", $1, $4} t && NF == 0 {t=0}' "$tmp/out"
printf "| **total** | %.1fs (CPU %.0f s user + %.0f s sys) |\n" "$wall" "$usr" "$sys"
echo
grep -E '^  (pretrain|train|sample):' "$tmp/out" | sed 's/^  /- /'
j="$tmp/work/train/train.json"
val=$(sed -n 's/.*"val_loss": \(.*\),/\1/p' "$j")
base=$(sed -n 's/.*"baseline_val_loss": \(.*\),/\1/p' "$j")
ratio=$(sed -n 's/.*"val_ratio": \(.*\),/\1/p' "$j")
echo
echo "| validation loss | value |"
echo "|---|---:|"
printf "| frozen backbone alone (temporal layers at identity) | %.4f |\n" "$base"
printf "| trained video model | %.4f |\n" "$val"
printf "| ratio trained / backbone | %.3f |\n" "$ratio"
