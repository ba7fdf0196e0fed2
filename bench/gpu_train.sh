#!/usr/bin/env bash
# The GPU training step (trainer/gpu) against the same model in PyTorch, eager and compiled.
# (bench/gpu_step_compare.sh is the one-call acceptance run: tests, an older commit's
# step, PyTorch eager and torch.compile.)
#
#   bash bench/gpu_train.sh          # here (no GPU needed): build the gpu-tagged test
#                                    # binary and gpubench into .gpu/ (CGO_ENABLED=0)
#   bash bench/gpu_train.sh device   # on the GPU machine (carry .gpu): numerics test
#                                    # (GPU loss and trainable grads vs the Gorgonia CPU
#                                    # graph), then the timelapse step (25 frames, 64x64,
#                                    # batch 4) in Go and in PyTorch, strict fp32 and TF32,
#                                    # side by side; logs under $OUT (or ./gpu-out), a table last
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-build}" == build ]]; then
	set -e
	mkdir -p .gpu
	CGO_ENABLED=0 go test -c -tags gpu -ldflags="-s -w" -o .gpu/gpu.test ./trainer/gpu
	CGO_ENABLED=0 go build -ldflags="-s -w" -o .gpu/gpubench ./trainer/gpu/gpubench
	if [[ ! -f .gpu/smoke-shards/index.json ]]; then # shards for the end-to-end run (needs ffmpeg here)
		go build -o .gpu/pipeline ./cmd/pipeline
		tmp=$(mktemp -d)
		sed "s|^workdir: .*|workdir: $tmp/work|" configs/gpu-smoke.yaml > "$tmp/gpu-smoke.yaml"
		./.gpu/pipeline run "$tmp/gpu-smoke.yaml" --stage pack
		rm -rf .gpu/smoke-shards && cp -r "$tmp/work/pack" .gpu/smoke-shards && rm -rf "$tmp" .gpu/pipeline
	fi
	echo "built .gpu/gpu.test, .gpu/gpubench, .gpu/smoke-shards; device command"
	echo "(carry [\".gpu/gpu.test\", \".gpu/gpubench\", \".gpu/smoke-shards\"]):"
	echo "  bash bench/gpu_train.sh device"
	exit 0
fi

out="${OUT:-gpu-out}"
mkdir -p "$out"
export PIPELINE_CUDA_CACHE="${TMPDIR:-/tmp}/pipeline-kernel-cache"
BATCH="${BATCH:-4}" FRAMES="${FRAMES:-25}" RES="${RES:-64}" STEPS="${STEPS:-50}" WARMUP="${WARMUP:-10}"
# at most 8 files come back from $OUT: console.log (the caller's), numerics.log, results.jsonl,
# errors.log, profile.md, e2e.log, e2e_train_loss.png, e2e_sample.gif
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
date -u +"date: %Y-%m-%dT%H:%MZ"
nproc | sed 's/^/cpus: /'

if [[ "${NUMERICS:-1}" == 1 ]]; then
	timeout 300 ./.gpu/gpu.test -test.v -test.timeout 280s -test.run "${RUN:-.}" > "$out/numerics.log" 2>&1
	echo "numerics exit $?"
	grep -E -- '--- (PASS|FAIL)|worst rel err|memory:|rel err|panic|Error' "$out/numerics.log" | head -40
fi

spec="${TMPDIR:-/tmp}/net.json"
./.gpu/gpubench -spec "$spec" -batch "$BATCH" -frames "$FRAMES" -res "$RES"
res="$out/results.jsonl"
: > "$res"
common=(-batch "$BATCH" -frames "$FRAMES" -res "$RES" -steps "$STEPS" -warmup "$WARMUP")
err="$out/errors.log"
: > "$err"
run() { # name, command...: append the JSON line to $res, stderr to $err
	local name=$1
	shift
	echo "== $name" >> "$err"
	timeout 200 "$@" >> "$res" 2>> "$err" || { echo "$name failed:"; tail -5 "$err"; }
}
for prec in fp32 tf32; do
	tf=false
	[[ $prec == tf32 ]] && tf=true
	run "go $prec" ./.gpu/gpubench "${common[@]}" -tf32=$tf
	[[ $prec == tf32 ]] && run "go $prec device AdamW" ./.gpu/gpubench "${common[@]}" -tf32=$tf -optimizer device
	PYTHONUNBUFFERED=1 run "torch $prec" python3 bench/torch_reference.py "$spec" --precision $prec --steps "$STEPS" --warmup "$WARMUP"
	PYTHONUNBUFFERED=1 run "torch $prec compile" python3 bench/torch_reference.py "$spec" --precision $prec --steps "$STEPS" --warmup "$WARMUP" --compile
done
if [[ "${PROFILE:-1}" == 1 ]]; then
	timeout 100 ./.gpu/gpubench -batch "$BATCH" -frames "$FRAMES" -res "$RES" -steps 10 -warmup 3 -tf32=true \
		-profile "$out/profile.md" > /dev/null 2>> "$err" || echo "profile failed"
	cat "$out/profile.md" 2>/dev/null
fi
python3 - "$res" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
if not rows:
    sys.exit("no results")
r0 = rows[0]
print(f"\n{r0['device']}: batch {r0['batch']} x {r0['frames']} frames, {r0['res']}x{r0['res']}, "
      f"{r0['params']/1e6:.2f}M params, {r0['trainable']/1e6:.2f}M trainable; median of steps after warm-up")
print("| impl | precision | variant | optimizer | step ms (median) | GPU ms | samples/s | peak alloc MiB | reserved MiB | optimizer MiB on GPU | host AdamW ms (fraction) | loss |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    opt = f"{r['optim_ms_median']:.1f} ({100*r['optim_fraction']:.0f}%)" if r["impl"] == "go" and r["optimizer"] == "host" else "-"
    variant = r.get("variant") or "default"
    gms = f"{r['gpu_ms_median']:.1f}" if "gpu_ms_median" in r else "-"
    print(f"| {r['impl']} | {r['precision']} | {variant} | {r['optimizer']} | {r['step_ms_median']:.1f} | {gms} | {r['samples_per_s']:.1f} | "
          f"{r['peak_alloc_mib']:.0f} | {r['reserved_mib']:.0f} | {r.get('optimizer_device_mib', 0):.0f} | {opt} | {r['final_loss']:.4f} |")
for prec in ("fp32", "tf32"):
    go = [r for r in rows if r["impl"] == "go" and r["optimizer"] == "host" and r["precision"] == prec and not r.get("variant")]
    th = [r for r in rows if r["impl"] == "torch" and r["precision"] == prec and r.get("variant") == "eager"]
    if go and th:
        print(f"{prec}: go/torch step time {go[0]['step_ms_median']/th[0]['step_ms_median']:.2f}x, "
              f"peak memory {go[0]['peak_alloc_mib']/th[0]['peak_alloc_mib']:.2f}x")
PY
if [[ "${E2E:-1}" == 1 && -f .gpu/smoke-shards/index.json ]]; then
	e2e="${TMPDIR:-/tmp}/gpu-e2e"
	rm -rf "$e2e"
	timeout "${E2E_TIMEOUT:-200}" ./.gpu/gpubench e2e -shards .gpu/smoke-shards -out "$e2e" \
		-pretrain-steps "${E2E_PRETRAIN:-200}" -train-steps "${E2E_TRAIN:-200}" > "$out/e2e.log" 2>&1
	echo "e2e exit $?"
	grep -E 'msg=(pretrain|train|"train|"pretrain|sample)|level=(WARN|ERROR)|^\{|gpubench e2e' "$out/e2e.log" | tail -25
	cp "$e2e/train/loss.png" "$out/e2e_train_loss.png" 2>/dev/null
	cp "$e2e/sample/sample.gif" "$out/e2e_sample.gif" 2>/dev/null
	cat "$e2e/train/train.json" 2>/dev/null
fi
