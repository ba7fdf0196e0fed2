#!/usr/bin/env bash
# Issue 19, the validation-loss ratio: re-run the default pipeline's train
# and sample stages with changed train params over a finished default
# workdir (its synth..pretrain reused from the cache), and print one table
# row: name, params, val loss, baseline, ratio, hf and change ratios, CPU
# seconds (user+sys) and wall seconds of the run (train + sample).
#
#   bench/speckle/ratio-variant.sh BASE_WORKDIR NAME [train param lines...]
#   bench/speckle/ratio-variant.sh work/default lr1e-3 'lr: 1.0e-3'
#
# Each param line replaces the default's line of that key in pipeline.yaml's
# train block (or is added). The variant's workdir is $RATIO_OUT/NAME
# (default /tmp/ratio); PIPELINE is the binary (default bin/pipeline);
# RATIO_ARGS extra words for `pipeline run` (--stage train: no sample);
# RATIO_YAML the config to vary (default the repo's pipeline.yaml).
set -euo pipefail
base=$1 name=$2
shift 2
out=${RATIO_OUT:-/tmp/ratio}/$name
bin=${PIPELINE:-bin/pipeline}
here=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$out" && mkdir -p "$out"
cp -a "$base" "$out/work"
rm -rf "$out/work/train" "$out/work/sample"
awk -v wd="$out/work" -v over="$(printf '%s\n' "$@")" '
BEGIN { n = split(over, lines, "\n"); for (i = 1; i <= n; i++) if (lines[i] != "") { k = lines[i]; sub(/:.*/, "", k); val[k] = lines[i]; order[++m] = k } }
/^workdir:/ { print "workdir: " wd; next }
/^  [a-z_]+:$/ { if (intrain) flush(); intrain = ($1 == "train:") }
intrain && /^      [a-z_]+:/ { k = $1; sub(/:$/, "", k); if (k in val) { print "      " val[k]; done[k] = 1; next } }
{ print }
function flush(  i) { for (i = 1; i <= m; i++) if (!(order[i] in done)) print "      " val[order[i]]; intrain = 0 }
END { if (intrain) flush() }
' "${RATIO_YAML:-$here/pipeline.yaml}" > "$out/pipeline.yaml"
TIMEFORMAT='%R %U %S'
# shellcheck disable=SC2086 # RATIO_ARGS: extra words for pipeline run (e.g. --stage train)
{ time "$bin" run ${RATIO_ARGS:-} "$out/pipeline.yaml" > "$out/run.log" 2>&1; } 2> "$out/time.txt"
read -r wall user sys < "$out/time.txt"
grep -q 'stage=pretrain.*reason=' "$out/run.log" && grep 'running stage=pretrain' "$out/run.log" >&2 && echo "warning: pretrain re-ran" >&2
j="$out/work/train/train.json" s="$out/work/sample/sample.json"
val=$(sed -n 's/.*"val_loss": \(.*\),/\1/p' "$j"); bl=$(sed -n 's/.*"baseline_val_loss": \(.*\),/\1/p' "$j")
ratio=$(sed -n 's/.*"val_ratio": \(.*\),/\1/p' "$j")
hf=nan ch=nan
[ -f "$s" ] && hf=$(sed -n 's/.*"hf_ratio": \(.*\),/\1/p' "$s") && ch=$(sed -n 's/.*"change_ratio": \(.*\)/\1/p' "$s")
printf '| %s | %s | %.5f | %.5f | %.3f | %.2f | %.2f | %.0f | %.0f |\n' "$name" "$*" "$val" "$bl" "$ratio" "$hf" "$ch" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$wall"
