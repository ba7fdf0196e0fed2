// Package nn owns the neural-network operations of the trainer: for each op a
// plain-Go float32 reference on flat slices with an explicit shape struct
// (forward and backward functions, e.g. Conv2DForward, Conv2DBackwardData,
// Conv2DBackwardFilter), and a thin gorgonia.Op wrapper that puts the op into
// a Gorgonia expression graph and differentiates it symbolically (SDOp).
//
// The plain functions are the numerical contract: the GPU backend
// (trainer/cuda) checks its kernels against them, and the Gorgonia ops only
// move slices in and out of them.
//
// Layouts: image activations are NCHW over N = B*T frames, so a clip batch
// (B, T, C, H, W) is the same memory as (B*T, C, H, W). Vectors are (N, D).
// Weights follow PyTorch: Conv2D (K, C, KH, KW), Linear (Out, In),
// TemporalConv (K, C, 3).
//
// Gradient nodes are only built for inputs that need them: Graph records
// which nodes require a gradient (trainable parameters and everything
// computed from them) and every op it adds differentiates only towards
// those inputs, so a frozen weight never gets a gradient node and no work
// is spent on it. Ops keep their output buffers between runs of a graph.
//
// Executors that walk a built graph (the GPU backend) read each node's
// kernel with SpecOf (an OpKind and one of the shape structs) and its
// inputs with Inputs.
//
// Sgemm is the one matrix-multiply entry point: a packed 6x16 AVX2/FMA
// micro-kernel on amd64, gonum elsewhere.
package nn
