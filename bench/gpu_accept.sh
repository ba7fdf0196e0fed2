#!/usr/bin/env bash
# One device call that checks a commit on the GPU machine: every gpu-tagged test of
# every package (trainer/cuda, trainer/gpu, trainer, trainer/dist, trainer/plan; the
# kernels' NVRTC compile is among them), the SD VAE against PyTorch at full size, then
# (BENCH=1) the full-size SD step by mode and the VAE rates. A table last.
#
#   bash bench/gpu_accept.sh build [DIR]     here (no GPU): the test binaries, CGO_ENABLED=0,
#                                            as one tar.xz in DIR (default .gpu/accept), with
#                                            bench/vae_ref.py and diffusers' source when
#                                            DIFFUSERS_SRC names its .tgz
#   bash DIR/gpu_accept.sh device DIR        on the GPU machine (carry DIR); logs under $OUT
# Env on the device: BENCH (1), MODES (the step modes, PIPELINE_SD_STEP_MODES' syntax),
# VAEREF (1: TestSDVAEFullSizeVsTorch, needs diffusers' source), TESTS (1), BENCH_FIRST (0).
set -uo pipefail

mode=${1:-build}
if [[ $mode == build ]]; then
	set -e
	cd "$(dirname "$0")/.."
	dir=${2:-.gpu/accept}
	mkdir -p "$dir"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	for p in cuda gpu dist plan; do
		CGO_ENABLED=0 go test -c -tags gpu -trimpath -ldflags="-s -w" -o "$tmp/$p.test" "./trainer/$p"
	done
	CGO_ENABLED=0 go test -c -tags gpu -trimpath -ldflags="-s -w" -o "$tmp/trainer.test" ./trainer
	# one xz stream: the binaries share most of their bytes
	tar -C "$tmp" -cf - cuda.test gpu.test dist.test plan.test trainer.test | xz -9 -T2 >"$dir/bins.tar.xz"
	git rev-parse --short HEAD >"$dir/commit"
	cp bench/gpu_accept.sh bench/vae_ref.py "$dir/"
	if [[ -n ${DIFFUSERS_SRC:-} ]]; then cp "$DIFFUSERS_SRC" "$dir/diffusers-src.tgz"; fi
	du -sh "$dir"
	exit 0
fi

dir=$(realpath "${2:?device DIR}")
out=${OUT:-gpu-out}
mkdir -p "$out"
bin=/tmp/gpu-accept
rm -rf "$bin" && mkdir -p "$bin"
python3 -c 'import sys,tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$dir/bins.tar.xz" "$bin"
chmod +x "$bin"/*.test
export PIPELINE_CUDA_CACHE=/tmp/gpu-accept-kernels NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
echo "commit $(cat "$dir/commit"), $(date -u +%Y-%m-%dT%H:%MZ)" | tee -a "$out/gpu.txt"
t0=$(date +%s)
summary=()
runpkg() { # label, test binary, package dir, test regexp, timeout s, extra env...
	local name=$1 tb=$2 pkg=$3 run=$4 lim=$5
	shift 5
	local s=$(date +%s)
	(cd "$pkg" && env "$@" timeout "$lim" "$bin/$tb.test" -test.v -test.timeout "$((lim - 5))s" -test.run "$run" >"$out/$name.log" 2>&1)
	local rc=$?
	summary+=("| $name | $(grep -c -- '--- PASS' "$out/$name.log") | $(grep -c -- '--- FAIL' "$out/$name.log") | $(grep -c -- '--- SKIP' "$out/$name.log") | $rc | $(($(date +%s) - s)) |")
	grep -E -- '^\s*--- FAIL|^panic|SIGSEGV' "$out/$name.log" | head -10
}
tests() {
if [[ ${TESTS:-1} == 1 ]]; then
	runpkg cuda cuda trainer/cuda . 200
	runpkg gpu gpu trainer/gpu . 240
	runpkg trainer trainer trainer 'GPU|Cuda|CUDA' 200
	runpkg dist dist trainer/dist . 60
	runpkg plan plan trainer/plan . 60
fi
}
vaeref() {
if [[ ${VAEREF:-1} == 1 && -f $dir/diffusers-src.tgz ]]; then
	mkdir -p /tmp/dsrc && tar -C /tmp/dsrc -xzf "$dir/diffusers-src.tgz"
	src=$(dirname "$(find /tmp/dsrc -maxdepth 3 -type d -name src | head -1)")
	PYTHONPATH=$src/src timeout 120 python3 "$dir/vae_ref.py" /tmp/vae-ref >"$out/vae_ref.log" 2>&1
	runpkg vae-vs-torch gpu trainer/gpu TestSDVAEFullSizeVsTorch 90 PIPELINE_SD_VAE_REF=/tmp/vae-ref
	grep -h 'rel err\|tolerance' "$out/vae-vs-torch.log" | head -8
fi
}
benches() {
if [[ ${BENCH:-1} == 1 ]]; then
	(cd trainer/gpu && PIPELINE_SD_BENCH=1 PIPELINE_SD_BENCH_UNET=0 PIPELINE_SD_BENCH_VAE_PREC=fp16 timeout 60 \
		"$bin/gpu.test" -test.v -test.run TestSDFullSizeBench >"$out/vae-bench.log" 2>&1)
	(cd trainer/gpu && PIPELINE_SD_BENCH=1 PIPELINE_SD_STEP_MODES=${MODES:-bf16/ckpt/device,bf16/ckpt/host} timeout 150 \
		"$bin/gpu.test" -test.v -test.run TestSDStepModesBench >"$out/modes.log" 2>&1)
fi
}
# BENCH_FIRST=1: the benchmarks before the tests (their numbers come back even if the tests run long)
if [[ ${BENCH_FIRST:-0} == 1 ]]; then benches; tests; vaeref; else tests; vaeref; benches; fi
echo
cat "$out/gpu.txt"
echo "| tests | passed | failed | skipped | exit | s |"
echo "|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${summary[@]}"
[[ -f $out/vae-bench.log ]] && grep -h -E '^\| (VAE|UNet)' "$out/vae-bench.log"
[[ -f $out/modes.log ]] && grep -h -E '^\|' "$out/modes.log"
echo "total $(($(date +%s) - t0)) s"
