// Package dist owns data-parallel training: which process this is (rank,
// world size and local rank, read from the variables of torchrun, Kubeflow,
// Kubernetes Indexed Jobs, Open MPI and Slurm, env.go), the rendezvous of the
// ranks over TCP, where rank 0 hands out the NCCL unique id and which then
// stays open as a small control channel for scalars (rendezvous.go), the
// NCCL binding through purego with libnccl loaded the way trainer/cuda
// loads the NVIDIA libraries (nccl.go), gradient buckets in reverse
// parameter order, each all-reduced (averaged) on the communication stream
// as soon as its last gradient is ready (PyTorch DDP's scheme, buckets.go;
// on a GPU fed by the backward pass through trainer/gpu's GradReducer,
// device.go), the broadcast of the parameters from rank 0 and the scalars
// the ranks agree on (group.go), and each rank's slice of a global batch
// (slice.go). disttest builds the stand-in libnccl and starts test ranks.
//
// The same code runs on host pointers (the CPU trainer, and the stand-in
// libnccl the tests build, which sums between processes through shared
// memory) and on device pointers (the GPU trainer with the real NCCL): a
// Memory says where buffers live and which stream NCCL queues on.
//
// World size 1 needs no NCCL: Join then returns a group whose collectives
// are no-ops, unless PIPELINE_DIST_NCCL=1 asks for NCCL anyway (the
// single-GPU check of the binding).
package dist
