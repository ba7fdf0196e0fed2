#!/usr/bin/env bash
# The training half on the CPU: runs a config (default: the embedded
# pipeline.yaml) from scratch in a temporary workdir, one stage at a time,
# on at most 2 cores (taskset), and prints, as markdown for
# bench/RESULTS.md, each stage's wall and CPU time, the stages' reports and
# the learning result (validation loss of the trained video model vs the
# frozen backbone alone, temporal layers at identity, on the same clips,
# noise and timesteps).
#
#   bash bench/train.sh [CONFIG]
#   KEEP=/tmp/run bash bench/train.sh   # keep the workdir (GIF, metrics, loss.png)
#
# Wall time is inflated by other load on the machine; CPU time (user+sys,
# ffmpeg children included) is not, and CPU/2 bounds the wall time on 2
# idle cores from below.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-pipeline.yaml}
tmp=${KEEP:-$(mktemp -d)}
mkdir -p "$tmp"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/pipeline" ./cmd/pipeline
sed "s|^workdir:.*|workdir: $tmp/work|" "$cfg" > "$tmp/config.yaml"
pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 2 ]; then pin=(taskset -c 0,1); fi
stages=$("$tmp/pipeline" run --dry-run "$tmp/config.yaml" 2>&1 | awk '$2 == "run" || $3 == "run" {print $1}')
echo "machine: $(nproc) cores${pin:+ (pinned to 2)}, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "config: $cfg; date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| stage | wall s | CPU s |"
echo "|---|---:|---:|"
tw=0; tc=0
for s in $stages; do
	/usr/bin/time -f "%e %U %S" -o "$tmp/t" "${pin[@]}" "$tmp/pipeline" run --stage "$s" "$tmp/config.yaml" > "$tmp/out-$s" 2>&1 || { tail -30 "$tmp/out-$s"; exit 1; }
	read -r w u k < "$tmp/t"
	printf "| %s | %.1f | %.1f |\n" "$s" "$w" "$(echo "$u + $k" | bc)"
	tw=$(echo "$tw + $w" | bc); tc=$(echo "$tc + $u + $k" | bc)
done
printf "| **total** | %.1f | %.1f |\n" "$tw" "$tc"
echo
"$tmp/pipeline" status "$tmp/config.yaml" 2>/dev/null | grep -E '^  (pretrain|train|sample):' | sed 's/^  /- /' || true
j="$tmp/work/train/train.json"
get() { sed -n "s/.*\"$1\": \\(.*\\),\$/\\1/p" "$j"; }
echo
echo "| validation loss (v-prediction MSE) | value |"
echo "|---|---:|"
printf "| frozen backbone alone (temporal layers at identity) | %.4f |\n" "$(get baseline_val_loss)"
printf "| trained video model | %.4f |\n" "$(get val_loss)"
printf "| ratio trained / backbone | %.3f |\n" "$(get val_ratio)"
