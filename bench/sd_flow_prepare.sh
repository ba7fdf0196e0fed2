#!/usr/bin/env bash
# Builds what bench/sd_flow_gpu.sh needs on the GPU machine into .gpu/h-flow/ of
# this checkout (DEST; default: .gpu/h-flow, git-ignored), for a device call to carry:
#   pipeline.xz     the command (CGO_ENABLED=0, stripped, xz)
#   work.tar.xz     the flow's workdir after synth -> ingest -> frames -> pack at
#                   512x512 (6 videos x 40 frames), made here with ffmpeg
#   ../h-flow-test/trainer.test.xz  the gpu-tagged trainer tests (the latents encoder's GPU
#                   check; the dry run carries it, the full run need not)
#   diffusers-src.tgz  diffusers' source tree as a .tgz with its src/ folder (a release
#                   tarball of github.com/huggingface/diffusers): the random-weight
#                   full-size model and the PyTorch sampling loop use it
# Run from any checkout of the project:
#   DIFFUSERS_SRC=/path/to/diffusers-src.tgz bash bench/sd_flow_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${DEST:-$PWD/.gpu/h-flow}
if [ -z "${DIFFUSERS_SRC:-}" ] || [ ! -f "$DIFFUSERS_SRC" ]; then
	echo "sd_flow_prepare.sh: set DIFFUSERS_SRC to a .tgz of diffusers' source tree (with src/); got '${DIFFUSERS_SRC:-}'" >&2
	exit 2
fi
mkdir -p "$DEST"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sdflow-prep.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/pipeline" ./cmd/pipeline
# the flow's first four stages, in a folder laid out as on the GPU machine
sed -e 's#@MODEL@#unused#' -e 's#@DEVICE@#cuda#' -e 's#@PRECISION@#tf32#' -e 's#@FRAMES_LENGTH@#4#' -e 's#@STEPS@#1#' \
	-e 's#@CHECKPOINTING@#false#' -e 's#@SAMPLE_STEPS@#1#' -e 's#@SAMPLE_FRAMES@#2#' bench/sd_flow.yaml.in >"$tmp/flow.yaml"
"$tmp/pipeline" run --quiet --stage pack "$tmp/flow.yaml"
tar -C "$tmp" -cJf "$DEST/work.tar.xz" work
xz -T2 -6 -c "$tmp/pipeline" >"$DEST/pipeline.xz"
# the GPU encoder test (TestSDEncoderGPUMatchesCPU), run by the dry run
CGO_ENABLED=0 go test -c -tags gpu -trimpath -ldflags "-s -w" -o "$tmp/trainer.test" ./trainer
mkdir -p "$DEST-test"
xz -T2 -6 -c "$tmp/trainer.test" >"$DEST-test/trainer.test.xz"
cp -f "$DIFFUSERS_SRC" "$DEST/diffusers-src.tgz"
ls -la "$DEST" "$DEST-test"
du -sh "$DEST" "$DEST-test"
