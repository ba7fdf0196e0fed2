package cuda

// LibraryWorkspaceBytes is the device memory the runtime's libraries take
// besides the tensors: cuBLAS's workspace (held for the device's life) and
// the largest scratch offered to cuDNN's timed algorithm search (held while
// a convolution shape is first planned; PIPELINE_CUDNN_FIND=0 skips the
// search). Memory planners add it to an executor's tensors.
func LibraryWorkspaceBytes() int64 { return blasWorkspaceBytes + findWorkspaces[0] }
