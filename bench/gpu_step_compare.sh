#!/usr/bin/env bash
# Acceptance run of one GPU session in one device call: every gpu-tagged test, the
# CUDA syntax check, and the timelapse step (batch 4 x 25 frames, 64x64) of this
# commit against an older commit's gpubench, PyTorch eager and torch.compile, on the
# same card; then a profiled run that times the gradient copies against the backward.
#
#   bash bench/gpu_step_compare.sh build [OLD_COMMIT] [DIR]
#       here (no GPU): builds into DIR (default .gpu/step-compare) the gpu-tagged test
#       binaries of trainer/cuda, trainer/gpu and trainer, this commit's gpubench and
#       OLD_COMMIT's (default a86fbd6, from a temporary git worktree), as one tar.xz, and
#       copies this script and bench/torch_reference.py next to them
#   bash DIR/gpu_step_compare.sh device DIR
#       on the GPU machine (carry DIR): logs under $OUT, a table last; ROUNDS (2), OPTS
#       ("host device") and TORCH (1) trim the benchmark part
set -uo pipefail

mode=${1:-build}
if [[ $mode == build ]]; then
	set -e
	cd "$(dirname "$0")/.."
	old=${2:-a86fbd6}
	dir=${3:-.gpu/step-compare}
	mkdir -p "$dir"
	flags=(-trimpath -ldflags="-s -w")
	CGO_ENABLED=0 go test -c -tags gpu "${flags[@]}" -o "$dir/cuda.test" ./trainer/cuda
	CGO_ENABLED=0 go test -c -tags gpu "${flags[@]}" -o "$dir/gpu.test" ./trainer/gpu
	CGO_ENABLED=0 go test -c -tags gpu "${flags[@]}" -o "$dir/trainer.test" ./trainer
	CGO_ENABLED=0 go build "${flags[@]}" -o "$dir/gpubench-new" ./trainer/gpu/gpubench
	wt=$(mktemp -d)
	git worktree add -q --detach "$wt" "$old"
	(cd "$wt" && CGO_ENABLED=0 go build "${flags[@]}" -o "$(cd "$OLDPWD" && realpath "$dir")/gpubench-old" ./trainer/gpu/gpubench)
	git worktree remove --force "$wt"
	git rev-parse --short HEAD > "$dir/commit-new"
	git rev-parse --short "$old" > "$dir/commit-old"
	# one xz stream over all five: the binaries share most of their bytes, which fits them
	# (with the working tree) into the 64 MiB a device call carries
	(cd "$dir" && tar -cf - cuda.test gpu.test trainer.test gpubench-new gpubench-old | xz -9 -T1 > bins.tar.xz &&
		rm cuda.test gpu.test trainer.test gpubench-new gpubench-old)
	cp bench/gpu_step_compare.sh bench/torch_reference.py "$dir/"
	du -sh "$dir"
	exit 0
fi

dir=${2:?device DIR}
out="${OUT:-gpu-out}"
mkdir -p "$out"
bin=/tmp/step-compare
mkdir -p "$bin"
# unpacked with Python's tarfile: the machine may lack xz
python3 -c 'import sys,tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$dir/bins.tar.xz" "$bin"
chmod +x "$bin"/*
export PIPELINE_CUDA_CACHE=/tmp/kernel-cache PIPELINE_REQUIRE_CLANG=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
date -u +"date: %Y-%m-%dT%H:%MZ" | tee -a "$out/gpu.txt"
echo "commits: new $(cat "$dir/commit-new"), old $(cat "$dir/commit-old"); clang: $(clang --version 2>/dev/null | head -1)" | tee -a "$out/gpu.txt"

# 1. Every gpu-tagged test (and the clang check, which PIPELINE_REQUIRE_CLANG makes fail, not skip).
tests=$out/tests.log
: > "$tests"
for t in cuda gpu trainer; do
	[[ -x $bin/$t.test ]] || { echo "$t.test not carried" | tee -a "$tests"; continue; }
	run='.'
	[[ $t == trainer ]] && run='GPU'
	echo "=== $t.test" >> "$tests"
	timeout 300 "$bin/$t.test" -test.v -test.timeout 290s -test.run "$run" >> "$tests" 2>&1
	echo "$t.test exit $?" | tee -a "$tests"
done
grep -E -- '^--- FAIL|^(FAIL|panic)|TestKernelsParse|TestStepKernelCache|TestKernelCache' "$tests" | head -30
echo "tests: $(grep -c -- '--- PASS' "$tests") passed, $(grep -c -- '--- FAIL' "$tests") failed, $(grep -c -- '--- SKIP' "$tests") skipped"

# 2. The step: old and new alternately (twice each), then PyTorch eager and compiled.
spec=/tmp/net.json
"$bin/gpubench-new" -spec "$spec" -batch 4 -frames 25 -res 64
res=$out/results.jsonl
: > "$res"
err=$out/errors.log
: > "$err"
common=(-batch 4 -frames 25 -res 64 -steps "${STEPS:-50}" -warmup "${WARMUP:-10}" -tf32=true)
bench() { # label, command...
	local label=$1
	shift
	echo "== $label" >> "$err"
	local line
	line=$(timeout 240 "$@" 2>> "$err" | grep '^{' | tail -1) || true
	if [[ -n $line ]]; then
		python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["label"]=sys.argv[2]; print(json.dumps(r))' "$line" "$label" >> "$res"
	else
		echo "$label failed:"
		tail -5 "$err"
	fi
}
for round in $(seq "${ROUNDS:-2}"); do
	for opt in ${OPTS:-host device}; do
		bench "old $opt" "$bin/gpubench-old" "${common[@]}" -optimizer $opt
		bench "new $opt" "$bin/gpubench-new" "${common[@]}" -optimizer $opt
	done
done
export PYTHONUNBUFFERED=1
[[ ${TORCH:-1} == 1 ]] && bench "torch eager" python3 "$dir/torch_reference.py" "$spec" --precision tf32 --steps "${STEPS:-50}" --warmup "${WARMUP:-10}"
[[ ${TORCH:-1} == 1 ]] && bench "torch compile" python3 "$dir/torch_reference.py" "$spec" --precision tf32 --steps "${STEPS:-50}" --warmup "${WARMUP:-10}" --compile
# 3. Gradient copies against the backward pass (events on the copy stream), new binary.
bench "new host profiled" "$bin/gpubench-new" -batch 4 -frames 25 -res 64 -steps 10 -warmup 3 -tf32=true -profile "$out/profile.md"

python3 - "$res" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit("no results")
r0 = rows[0]
print(f"\n{r0['device']}: timelapse video model, batch {r0['batch']} x {r0['frames']} frames, {r0['res']}x{r0['res']}, TF32, "
      f"{r0['params']/1e6:.2f}M params ({r0['trainable']/1e6:.2f}M trainable); median of steps after warm-up")
print("| run | optimizer | step ms (median) | GPU ms | peak alloc MiB | loss |")
print("|---|---|---|---|---|---|")
for r in rows:
    g = f"{r['gpu_ms_median']:.1f}" if r.get("gpu_ms_median") else "-"
    print(f"| {r['label']} | {r['optimizer']} | {r['step_ms_median']:.1f} | {g} | {r['peak_alloc_mib']:.0f} | {r['final_loss']:.4f} |")
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
for opt in ("host", "device"):
    o, n = by.get(f"old {opt}", []), by.get(f"new {opt}", [])
    if o and n:
        os_, ns = statistics.mean(r["step_ms_median"] for r in o), statistics.mean(r["step_ms_median"] for r in n)
        og, ng = statistics.mean(r["gpu_ms_median"] for r in o), statistics.mean(r["gpu_ms_median"] for r in n)
        print(f"{opt}: new/old step {ns/os_:.3f} ({ns:.1f} vs {os_:.1f} ms), GPU {ng/og:.3f} ({ng:.1f} vs {og:.1f} ms)")
for r in by.get("new host profiled", []):
    print(f"gradient D2H copies: {r.get('grad_copy_ms', 0):.2f} ms per step, {r.get('grad_copy_overlap_ms', 0):.2f} ms of it "
          f"under the backward pass, tail after the last backward kernel {r.get('grad_copy_tail_ms', 0):.2f} ms")
    print("modules:", r.get("modules"))
PY
