package cuda

// What other packages need to queue work of another NVIDIA library (NCCL,
// bound by trainer/dist) on this package's devices and streams.

var libNCCL = library{
	what:    "NCCL",
	sonames: []string{"libnccl.so.2", "libnccl.so"},
	install: "install NCCL 2 (libnccl.so.2), e.g. the nvidia-nccl-cu13 wheel or the libnccl2 package",
}

// Library is a loaded shared library: its dlopen handle and the path that
// loaded.
type Library struct {
	Handle uintptr
	Path   string
}

var ncclLib loadOnce[Library]

// LoadNCCL loads libnccl once per process, the way the NVIDIA libraries are
// loaded (PIPELINE_CUDA_LIBRARY_PATH's folders first, then the dynamic
// loader's search). The error wraps ErrNoLibrary and says what to install.
func LoadNCCL() (*Library, error) {
	return ncclLib.get(func() (*Library, error) {
		h, path, err := libNCCL.open()
		if err != nil {
			return nil, err
		}
		return &Library{Handle: h, Path: path}, nil
	})
}

// StreamHandle is the CUstream of s (nil: the device's own stream), for a
// library that queues work on it.
func (d *Device) StreamHandle(s *Stream) uintptr { return d.streamOf(s) }

// Do runs fn on a locked OS thread with the device's primary context
// current (a library using the CUDA runtime picks the device from it).
func (d *Device) Do(fn func() error) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return fn()
}
