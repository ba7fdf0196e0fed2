#!/usr/bin/env bash
# The SD flow on the GPU machine (issue 17), from packed shards, in one device call:
#   bash bench/sd_flow_gpu.sh flow [full|tiny]     latents -> train_sd -> sample_sd (120 frames, 512x512,
#                                                  guidance) through the engine; each stage's wall time, GPU
#                                                  peak and `pipeline plan`'s estimate beside it
#   bash bench/sd_flow_gpu.sh all [full|tiny]      both in one call: train STEPS (100), then sample 120
#                                                  frames x 50 DDIM steps, ours and PyTorch's
#   bash bench/sd_flow_gpu.sh compare [full|tiny]  sampling 120 frames, 50 DDIM steps, guidance on: ours
#                                                  (sample_sd after a 1-step train_sd) vs the same loop in
#                                                  PyTorch (bench/sd_sample_torch.py) on the same weights
# full: a full-size SD-1.5 inpainting model with random weights, made here (bench/sd_flow_model.py);
# tiny: the same at tiny widths, a dry run of the scripts (and the encoder's GPU test).
# Needs .gpu/h-flow/ from bench/sd_flow_prepare.sh (pipeline.xz, work.tar.xz, diffusers-src.tgz).
# Env: STEPS (train; flow 200, all 100), SAMPLE_STEPS (flow 20, all/compare 50), PRECISION (bf16), CHECKPOINTING (true).
# Writes to $OUT: table.md (printed last), plan.json, logs.tgz, sample.gif, sample.png, torch.json.
set -uo pipefail
cd "$(dirname "$0")/.."
PART=${1:-flow}
MODE=${2:-full}
H=.gpu/h-flow
OUT=${OUT:-/tmp/sdflow-out}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
D=/tmp/sdflow-$PART-$MODE
el() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
unxz() { if command -v xz >/dev/null; then xz -dc "$1"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi; }
rm -rf "$D" && mkdir -p "$D/logs" "$OUT"
t_all=$(date +%s.%N)
unxz "$H/pipeline.xz" >"$D/pipeline" && chmod +x "$D/pipeline" || exit 1
unxz "$H/work.tar.xz" | tar -C "$D" -x || exit 1
tar -C "$D" -xzf "$H/diffusers-src.tgz" || exit 1
DSRC=$D/dsrc
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$D/logs/gpu.txt"

# the model
t0=$(date +%s.%N)
TINY=0
STEPS_SET=${STEPS:-}
FL=25 STEPS=${STEPS:-200} FRAMES=120 SSTEPS=${SAMPLE_STEPS:-20}
if [ "$MODE" = tiny ]; then
	TINY=1 FL=4 STEPS=${STEPS_SET:-4} FRAMES=8 SSTEPS=${SAMPLE_STEPS:-2}
fi
TINY=$TINY python3 bench/sd_flow_model.py "$D/model" "$DSRC" configs/testdata/sd15-tiny/tokenizer >"$D/logs/model.log" 2>&1
grep '^{' "$D/logs/model.log" || { tail -20 "$D/logs/model.log"; exit 1; }
case $PART in
compare) STEPS=1 SSTEPS=${SAMPLE_STEPS:-50} ;;
all) [ "$MODE" = full ] && STEPS=${STEPS_ALL:-${STEPS_SET:-100}} SSTEPS=${SAMPLE_STEPS:-50} ;;
esac
[ "$MODE" = tiny ] && SSTEPS=${SAMPLE_STEPS:-2}
echo "model $(el $t0) s" | tee "$D/logs/model.time"
sed -e "s#@MODEL@#model#" -e "s#@DEVICE@#${DEVICE:-cuda}#" -e "s#@PRECISION@#${PRECISION:-bf16}#" -e "s#@FRAMES_LENGTH@#$FL#" -e "s#@STEPS@#$STEPS#" \
	-e "s#@CHECKPOINTING@#${CHECKPOINTING:-true}#" -e "s#@SAMPLE_STEPS@#$SSTEPS#" -e "s#@SAMPLE_FRAMES@#$FRAMES#" \
	bench/sd_flow.yaml.in >"$D/flow.yaml"
"$D/pipeline" plan --json --gpu-memory 24GiB "$D/flow.yaml" >"$OUT/plan.json" 2>"$D/logs/plan.err" || cat "$D/logs/plan.err"
"$D/pipeline" plan --gpu-memory 24GiB "$D/flow.yaml" >"$D/logs/plan.txt" 2>&1

# one stage at a time, with nvidia-smi's used memory sampled beside the allocator's own peak
run_stage() {
	local st=$1
	nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$D/logs/smi-$st.txt" 2>/dev/null &
	local smi=$!
	local s=$(date +%s.%N)
	"$D/pipeline" run --log-format json --stage "$st" "$D/flow.yaml" >"$D/logs/$st.log" 2>&1
	local rc=$?
	echo "$st $(el $s) $rc" >>"$D/logs/walls.txt"
	kill "$smi" 2>/dev/null
	wait "$smi" 2>/dev/null
	grep -v '^{' "$D/logs/$st.log" | tail -5
	# what is under $OUT comes back even when the call runs out of time
	python3 bench/sd_flow_report.py "$D/logs" "$OUT" "$PART" "$MODE" >"$OUT/table.md" 2>/dev/null
	tar -C "$D" -czf "$OUT/logs.tgz" logs flow.yaml
	[ $rc = 0 ] || { tail -20 "$D/logs/$st.log"; return 1; }
}
ok=1
for st in latents train sample; do
	run_stage $st || { ok=0; break; }
done
if [ $ok = 1 ]; then
	for f in sample.gif sample.png; do cp "$D/work/sample/$f" "$OUT/$f"; done
	# the device call returns files of at most 16 MiB: a GIF of noise at 512x512 can be larger
	if [ "$(stat -c %s "$OUT/sample.gif")" -gt 15000000 ]; then
		python3 -c "
from PIL import Image, ImageSequence
im = Image.open('$OUT/sample.gif')
fr = [f.convert('RGB').resize((256, 256)) for f in ImageSequence.Iterator(im)]
fr[0].save('$OUT/sample.gif', save_all=True, append_images=fr[1:], duration=im.info.get('duration', 100), loop=0)
print('sample.gif over 15 MB: kept at 256x256 (the 512x512 contact sheet is sample.png)')"
	fi
fi
if [ $ok = 1 ] && [ "$PART" != flow ]; then
	FRAMES=$FRAMES STEPS=$SSTEPS python3 bench/sd_sample_torch.py "$DSRC" "$D/model" \
		"$D/work/train/video-model/unet/diffusion_pytorch_model.safetensors" 2>"$D/logs/torch.err" | tee "$OUT/torch.json"
	[ -s "$OUT/torch.json" ] || tail -20 "$D/logs/torch.err"
fi
if [ "$MODE" = tiny ] && [ -f "$H-test/trainer.test.xz" ]; then
	unxz "$H-test/trainer.test.xz" >"$D/trainer.test" && chmod +x "$D/trainer.test"
	(cd trainer && "$D/trainer.test" -test.run 'TestSDEncoderGPUMatchesCPU' -test.v 2>&1 | grep -E 'rel err|^(---|ok|PASS|FAIL)' | tee "$D/logs/encoder-test.txt")
fi
echo "total $(el $t_all) 0" >>"$D/logs/walls.txt"
python3 bench/sd_flow_report.py "$D/logs" "$OUT" "$PART" "$MODE" | tee "$OUT/table.md"
tar -C "$D" -czf "$OUT/logs.tgz" logs flow.yaml
