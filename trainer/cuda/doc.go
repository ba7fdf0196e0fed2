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
//   - the one module loader of the project (module.go): [Device.LoadModule] compiles a
//     [ModuleSource] (the shared helpers kernels/common.cuh, then its .cu files) with
//     NVRTC for the device's architecture, or takes the image from this process's cache
//     (a second device or training step compiles nothing) or from the disk cache, keyed
//     by source hash, architecture, driver and NVRTC version; [Module.Launch] queues a
//     kernel on the device's stream through the same launch path as the package's own
//     kernels, which honours PIPELINE_CUDA_SYNC=1. The package's kernels (kernels/) are
//     one module; trainer/gpu loads its own as another;
//   - device tensors (tensor.go) and the GPU forward and backward of the ops the GPU
//     training step uses (ops_*.go), each checked against trainer/nn's plain-Go function
//     by the gpu-tagged tests: 2D convolution through cuDNN (algorithms timed on first
//     use; when cuDNN does not load, or declines a geometry, im2col + cuBLAS, decided
//     then and logged as a warning, cudnn.go), group norm, group norm fused with the
//     SiLU after it, SiLU, linear, upsample, concatenation, permutes, reductions and the
//     frame MSE. The temporal convolution and attention of the step live in trainer/gpu.
//
// Streams: the device's stream and every [Device.NewStream] are non-blocking: no work
// runs on the legacy default stream (cuBLAS and cuDNN are bound to the device's
// stream), so a copy stream overlaps compute, ordered only by events.
//
// Logging: records go to Options.Logger (none when nil), with fixed messages and typed
// fields.
//
// Liveness: Go memory passed to C is converted with uintptr(unsafe.Pointer(&x)) in the
// argument list of a //go:uintptrescapes wrapper (driverAPI.call and the like), which
// keeps it alive and in place during the call; liveness_test.go checks this package and
// trainer/gpu for any other conversion. cudatest holds the clang syntax check of both
// kernel sets.
//
// Precision: strict float32 by default (cuBLAS default math, cuDNN FMA math); TF32 on
// request (Options.TF32). Reductions accumulate in float64 where nn does.
//
// Tests: go test ./trainer/cuda runs the no-GPU checks (library lookup, errors, the
// kernels' syntax under clang, liveness of C arguments). With -tags gpu the
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
