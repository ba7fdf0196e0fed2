// Package gpu owns the GPU training step: an executor that walks the same
// network description the CPU Gorgonia graph is built from
// (model.Describe) and runs its forward pass, the frame MSE loss and the
// backward pass on an NVIDIA GPU through trainer/cuda.
//
// API: NewStep(params, video, B, T, H, W, Options) returns a *Step with the
// contract of model.TrainGraph (Step(input, timesteps, target) -> loss;
// Grad(i) for Trainable()[i], in pinned host memory) and of
// model.ForwardGraph (Predict); UploadWeights copies host weights back after
// an optimizer update. trainer/backend.go switches a training session
// between the two. Options.Logger is handed to trainer/cuda.
//
// What a step does (step.go, forward.go, backward.go):
//   - the batch is staged in pinned host buffers and uploaded;
//   - frozen weights were uploaded once by NewStep and stay resident;
//     trainable weights go up again after each update (pinned, async);
//   - activations, gradients and scratch come from trainer/cuda's caching
//     allocator and are freed as soon as the plan (plan.go, by liveness)
//     says nothing later reads them, so steady-state steps never call
//     cuMemAlloc and the peak follows what the backward pass really needs:
//     a frozen convolution keeps nothing (its input only serves a weight
//     gradient that is never computed);
//   - no frozen parameter gets a gradient: only the activation gradients
//     that flow through frozen layers;
//   - each trainable gradient is copied to a pinned host buffer on a copy
//     stream as soon as it is ready, overlapping the rest of the backward.
//
// One GPU path per op. Beyond trainer/cuda's ops: attention in the model's
// packed qkv layout with strided GEMMs per head (attention.go), the temporal
// convolution as GEMMs over contiguous 3-frame windows with no patch matrix
// (tconv.go), and the temporal conv's bias added with the ResBlock's
// embedding in one pass; every GroupNorm whose output only feeds a SiLU runs
// as trainer/cuda's fused GroupNormSiLU ops (gnsilu.go finds them). Their few
// kernels are CUDA C under kernels/, a module trainer/cuda compiles, caches
// and loads like its own (kernels.go) and launches on the device's stream:
// nothing here loads a library, compiles or loads a module itself.
//
// The network's constants (the loss skip, each group norm's eps) come from
// the description (model.Net); a net in which two layers share a parameter
// is refused (model.Net.Check), since gradients are written, not summed.
//
// The optimizer runs on the host (trainer/optim's AdamW, all cores; the GPU
// holds no optimizer bytes) unless DeviceAdamW keeps the moments and the
// update on the GPU (optimizer_state: device), with checkpoints in the same
// format. Options.Profile times each layer kind and the gradient copies
// against the backward pass (profile.go); gpubench times steps against
// bench/torch_reference.py and runs `gpubench e2e`.
package gpu
