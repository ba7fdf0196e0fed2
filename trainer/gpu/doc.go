// Package gpu owns the GPU training step: an executor that walks the same
// network description the CPU Gorgonia graph is built from
// (model.Describe) and runs its forward pass, the frame MSE loss and the
// backward pass on an NVIDIA GPU through trainer/cuda.
//
// What it does per step (Step.Run):
//   - the batch (input, timesteps, target) is copied into pinned host
//     buffers and uploaded;
//   - frozen weights were uploaded once at NewStep and stay resident;
//     trainable weights are uploaded again only after an update
//     (UploadWeights);
//   - activations and gradient buffers come from the caching allocator of
//     trainer/cuda and are freed as soon as the plan (plan.go) says the
//     rest of the step no longer reads them, so steady-state steps never
//     call cuMemAlloc and the peak follows liveness;
//   - no weight gradient of a frozen parameter is computed: only the
//     activation gradients that flow through frozen layers;
//   - each trainable gradient is copied device-to-host into a pinned buffer
//     on a copy stream as soon as it is ready, overlapping the rest of the
//     backward pass.
//
// The optimizer runs on the host (trainer/optim's AdamW, all cores) by
// default; OptimizerDevice keeps AdamW's moments and the update on the GPU
// instead, for comparison (DeviceAdamW).
//
// The few kernels trainer/cuda does not export (the row softmax of
// attention, the device AdamW update, squared norms) are CUDA C sources
// under kernels/, compiled with NVRTC on first use (kernels.go). They run on
// the legacy default stream, which is ordered with trainer/cuda's blocking
// stream in both directions.
//
// Device selects the backend for `device: cuda | cpu | auto`.
package gpu
