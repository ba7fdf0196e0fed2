// Package cuda is the trainer's GPU backend: a small CUDA runtime in pure Go.
//
// It owns everything that talks to an NVIDIA GPU:
//   - loading libcuda.so.1, cuBLAS, NVRTC and (optionally) cuDNN 9 at run time with
//     github.com/ebitengine/purego, so binaries build with CGO_ENABLED=0 and find the
//     user's driver when they run (libs.go; PIPELINE_CUDA_LIBRARY_PATH overrides the lookup);
//   - driver API bindings: the primary context, streams, events, device and pinned host
//     memory (driver.go, device.go, stream.go, pinned.go);
//   - a caching allocator so a training step does no cuMemAlloc, with memory in use and
//     peak reported (alloc.go);
//   - cuBLAS strided batched SGEMM, strict float32 or TF32 (blas.go);
//   - the project's kernels, CUDA C sources under kernels/ embedded in the binary,
//     compiled by NVRTC for the device's architecture on first use and cached on disk
//     keyed by source hash, architecture, driver and NVRTC version (nvrtc.go, module.go);
//   - device tensors (tensor.go) and the GPU forward and backward of every op of
//     trainer/nn (ops_*.go), each checked against nn's plain-Go function by the
//     gpu-tagged tests: 2D convolution through cuDNN (algorithms timed on first use,
//     im2col + cuBLAS as the fallback, cudnn.go), the temporal convolution as GEMMs over
//     in-place frame windows (ops_temporal_window.go), group norm, SiLU, linear,
//     attention in nn's packed layout over an SDPA core, upsample, average-pool
//     downsample, concatenation, permutes, reductions and the frame MSE.
//
// Precision: strict float32 by default (cuBLAS default math, cuDNN FMA math); TF32 on
// request (Options.TF32, Device.SetTF32). Reductions accumulate in float64 where nn does.
//
// Tests: go test ./trainer/cuda runs the no-GPU checks (library lookup, errors, the
// windowed convolution's GEMM decomposition emulated on the CPU). With -tags gpu the
// binary checks every op on a GPU; bench/gpu_ops.sh builds it and times the ops
// against PyTorch.
//
// A CUDA context is current per OS thread. Every exported method that calls the driver
// locks its goroutine to its OS thread and makes the device's primary context current for
// the duration of the call, so a Device may be used from any goroutine; calls are
// serialised on the device's stream.
//
// Without a GPU or driver nothing panics: [Available] reports why, and [Open] returns an
// error naming the missing library and what to install.
package cuda
