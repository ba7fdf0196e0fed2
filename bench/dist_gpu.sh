#!/usr/bin/env bash
# Data-parallel scaling of the full-size SD video model's training step (issue 20) on the GPUs of
# one machine: issue 16's configuration (the SD-1.5 inpainting UNet inflated to pseudo-3D, random
# weights, B=1 clip per GPU, T=25, 64x64x4 latents, temporal layers trainable, TF32), host AdamW.
# For each GPU count N it runs
#   the reference: one process on GPU 0, world size 1, no NCCL, the global batch of N clips as N
#     micro-batches of 1 whose gradients are averaged (the same global batch on one GPU), K steps;
#   the job: N processes started here with torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK,
#     LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), one clip each, the NCCL id over TCP, parameters
#     broadcast from rank 0, gradients all-reduced in 25 MiB buckets during backward, K steps;
# and rank 0 compares its step-1 averaged gradients and final weights with the reference's. Scaling
# efficiency at N = the reference's step time (1 clip, 1 GPU) / the job's step time (1 clip per GPU):
# per-GPU throughput kept.
#
#   bash bench/dist_gpu.sh build          # here: the gpu-tagged trainer/dist test binary, xz'd,
#                                         # into .gpu/h-sddist/ (CGO_ENABLED=0)
#   bash bench/dist_gpu.sh device [N...]  # on the GPU machine (carry .gpu/h-sddist): GPU counts to
#                                         # run (default: every GPU); logs under $OUT, a table last
# Knobs: STEPS (K, default 4; the first step is not timed), PRECISION (the SD executor's: tf32, the
# default, fp32, bf16, fp16), PORT (MASTER_PORT, default 29500; the rendezvous takes PORT+1).
# KIND=cpu GPUS=N is a dry run of this script on the CPU (the tiny UNet; a plain `go test -c` binary
# as $dir/dist.test and the stand-in libnccl's folder in PIPELINE_CUDA_LIBRARY_PATH).
set -uo pipefail
cd "$(dirname "$0")/.."
dir=.gpu/h-sddist

if [[ "${1:-build}" == build ]]; then
	set -e
	mkdir -p "$dir"
	CGO_ENABLED=0 go test -c -tags gpu -ldflags="-s -w" -o "$dir/dist.test" ./trainer/dist
	xz -T2 -6 -f "$dir/dist.test"
	ls -la "$dir"
	echo "device command (carry [\"$dir\"]): bash bench/dist_gpu.sh device"
	exit 0
fi
shift
out="${OUT:-dist-out}"
mkdir -p "$out"
bin="$dir/dist.test"
if [[ ! -x "$bin" ]]; then
	{ xz -dkf "$bin.xz" 2>/dev/null ||
		python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$bin.xz" "$bin"; } &&
		chmod +x "$bin" || { echo "no $bin(.xz): run bash bench/dist_gpu.sh build first"; exit 1; }
fi
kind="${KIND:-gpu}"
if [[ $kind == gpu ]]; then
	gpus=$(nvidia-smi -L | grep -c '^GPU ')
	nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv
	nvidia-smi topo -m 2>/dev/null | head -12
else
	gpus="${GPUS:-2}"
	export PIPELINE_DIST_BENCH_UNET_CONFIG="$PWD/trainer/weights/testdata/sd-tiny-inpaint/unet/config.json"
fi
counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=("$gpus")
date -u +"date: %Y-%m-%dT%H:%MZ"
export PIPELINE_CUDA_CACHE="${TMPDIR:-/tmp}/pipeline-kernel-cache"
export PIPELINE_DIST_BENCH="$kind" PIPELINE_DIST_BENCH_STEPS="${STEPS:-4}" PIPELINE_DIST_BENCH_PER=1
export PIPELINE_SD_PRECISION="${PRECISION:-tf32}"
export PIPELINE_DIST_TIMEOUT=5m
port="${PORT:-29500}"
scratch="${TMPDIR:-/tmp}/dist-bench"
status=0

run_ref() { # N: the reference for a global batch of N on GPU 0
	local n=$1
	mkdir -p "$scratch/$n"
	CUDA_VISIBLE_DEVICES=0 PIPELINE_DIST_BENCH_MODE=ref PIPELINE_DIST_BENCH_GLOBAL="$n" PIPELINE_DIST_BENCH_DIR="$scratch/$n" \
		timeout 600 "$bin" -test.run '^TestDistSDBench$' -test.v -test.timeout 590s > "$out/ref-$n.log" 2>&1 || {
		echo "reference for N=$n failed (exit $?): $out/ref-$n.log"; tail -20 "$out/ref-$n.log"; status=1; }
}

run_job() { # N: N ranks, one per GPU, torchrun's variables
	local n=$1 pids=() r
	for ((r = 0; r < n; r++)); do
		RANK=$r WORLD_SIZE=$n LOCAL_RANK=$r LOCAL_WORLD_SIZE=$n GROUP_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
			PIPELINE_DIST_BENCH_MODE=dist PIPELINE_DIST_BENCH_GLOBAL="$n" PIPELINE_DIST_BENCH_DIR="$scratch/$n" \
			timeout 600 "$bin" -test.run '^TestDistSDBench$' -test.v -test.timeout 590s > "$out/job-$n-rank$r.log" 2>&1 &
		pids+=($!)
	done
	for r in "${!pids[@]}"; do
		wait "${pids[$r]}" || { echo "N=$n rank $r failed: $out/job-$n-rank$r.log"; tail -20 "$out/job-$n-rank$r.log"; status=1; }
	done
	port=$((port + 2))
}

for n in "${counts[@]}"; do
	if ((n > gpus)); then echo "N=$n: only $gpus GPUs"; status=1; continue; fi
	run_ref "$n"
	[[ -f "$scratch/$n/distbench-ref.txt" ]] && run_job "$n"
done

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1"; }
one=""
for n in "${counts[@]}"; do
	[[ -f "$scratch/$n/distbench-ref.txt" ]] && { one=$(field "$scratch/$n/distbench-ref.txt" step_ms); break; }
done
echo
echo "GPU counts ${counts[*]}, $(field "$scratch/${counts[0]}/distbench-ref.txt" steps) AdamW steps, 1 clip per GPU; $(sed -n 's/.* net=//p' "$scratch/${counts[0]}/distbench-ref.txt" 2>/dev/null)"
echo "| GPUs | global batch | step ms (1 GPU: 1 clip) | clips/s | scaling efficiency | buckets | step-1 grad rel. err vs 1 GPU | final weights max abs diff (lr) | host update ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
if [[ -n "$one" ]]; then
	echo "| 1 | 1 | $one | $(awk -v s="$one" 'BEGIN{printf "%.2f", 1000/s}') | 100% | - | - | - | $(field "$scratch/${counts[0]}/distbench-ref.txt" opt_ms) |"
fi
for n in "${counts[@]}"; do
	f="$scratch/$n/distbench-dist.txt"
	[[ -f "$f" ]] || { echo "| $n | $n | failed | | | | | | |"; continue; }
	ms=$(field "$f" step_ms)
	echo "| $n | $n | $ms | $(awk -v s="$ms" -v n="$n" 'BEGIN{printf "%.2f", 1000*n/s}') | $(awk -v a="$one" -v b="$ms" 'BEGIN{printf "%.1f%%", 100*a/b}') | $(field "$f" buckets) | $(field "$f" grad_rel) | $(field "$f" weight_maxabs) ($(field "$f" lr)) | $(field "$f" opt_ms) |"
done
grep -h -- '--- FAIL\|Error' "$out"/*.log | head -10
exit $status
