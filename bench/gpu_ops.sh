#!/usr/bin/env bash
# GPU op checks and timings for trainer/cuda.
#
#   bash bench/gpu_ops.sh          # here (no GPU needed): build the gpu-tagged test binary
#                                  # into .gpu/ and print the one-line device command
#   bash bench/gpu_ops.sh device   # on the GPU machine (carry .gpu): run every gpu test,
#                                  # time each op against PyTorch (bench/torch_ops.py),
#                                  # logs under $OUT (or ./gpu-out), a table last
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-build}" == build ]]; then
	mkdir -p .gpu
	CGO_ENABLED=0 go test -c -tags gpu -o .gpu/cuda.test ./trainer/cuda
	echo "built .gpu/cuda.test ($(du -h .gpu/cuda.test | cut -f1))"
	echo "device command (carry [\".gpu\"]):"
	echo "  bash bench/gpu_ops.sh device"
	exit 0
fi

out="${OUT:-gpu-out}"
mkdir -p "$out"
export PIPELINE_CUDA_CACHE="$out/kernel-cache"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv \
	| tee "$out/gpu.txt" || true
date -u +"date: %Y-%m-%dT%H:%MZ" | tee -a "$out/gpu.txt"

# 1. Correctness: every gpu-tagged test (ops against trainer/nn, runtime).
set +e
./.gpu/cuda.test -test.v -test.timeout 300s -test.run "${RUN:-.}" > "$out/tests.log" 2>&1
rc=$?
if [[ $rc != 0 && -z "${PIPELINE_CUDNN_FIND:-}" ]] && grep -qE 'SIGSEGV|fatal error|^panic:' "$out/tests.log"; then
	# A crash: keep its log and retry with cuDNN's algorithm search off (heuristics only).
	mv "$out/tests.log" "$out/tests-crash.log"
	grep -m3 -E 'SIGSEGV|fatal error|^panic:' "$out/tests-crash.log" || true
	echo "retrying with PIPELINE_CUDNN_FIND=0"
	export PIPELINE_CUDNN_FIND=0
	./.gpu/cuda.test -test.v -test.timeout 300s -test.run "${RUN:-.}" > "$out/tests.log" 2>&1
	rc=$?
fi
set -e
grep -E '^(--- FAIL|FAIL|PASS|ok)' "$out/tests.log" | head -40 || true
grep -E 'relative error [0-9.e+-]+, want|Error|error|panic' "$out/tests.log" | grep -v 'relative error [0-9.e-]*$' | head -40 || true
echo "tests: $(grep -c -- '--- PASS' "$out/tests.log") passed, $(grep -c -- '--- FAIL' "$out/tests.log") failed (exit $rc)"
sed -n '/^worst relative error/,$p' "$out/tests.log" | grep -v -E '^(PASS|FAIL|ok)' || true

[[ "${TIMINGS:-1}" == 1 ]] || exit $rc
# 2. Timings: ours, then PyTorch on the same shapes.
PIPELINE_CUDA_TIMINGS="$out/go_ops.json" ./.gpu/cuda.test -test.v -test.run '^TestTimings$' > "$out/timings.log" 2>&1 \
	|| { tail -20 "$out/timings.log"; exit 1; }
PYTHONUNBUFFERED=1 python3 bench/torch_ops.py "$out/go_ops.json" > "$out/table.md" 2> "$out/torch.log" \
	|| { tail -20 "$out/torch.log"; cat "$out/table.md"; exit 1; }
cat "$out/table.md"
exit $rc
