package cuda

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"unsafe"
)

// Device attribute numbers (CUdevice_attribute).
const (
	attrMultiprocessorCount = 16
	attrComputeMajor        = 75
	attrComputeMinor        = 76
)

// Options configures [Open]. The zero value is strict float32 with the default kernel cache.
type Options struct {
	// TF32 lets cuBLAS use TF32 tensor cores for float32 matrix products
	// (about 10 mantissa bits in the products, float32 accumulation).
	TF32 bool
	// CacheDir holds compiled kernels. Empty: $PIPELINE_CUDA_CACHE, else
	// os.UserCacheDir()/pipeline/cuda. "-" disables the disk cache.
	CacheDir string
	// Logger receives the package's records (nil: none).
	Logger *slog.Logger
}

// Device is one GPU with its primary context, a stream, cuBLAS, the compiled kernels
// and a caching allocator. Its methods may be called from any goroutine; work is
// queued in order on the device's stream.
type Device struct {
	drv     *driverAPI
	ordinal int
	dev     int32
	ctx     uintptr
	name    string
	major   int
	minor   int
	sms     int
	driver  int // cuDriverGetVersion, e.g. 13000
	total   uint64
	opts    Options
	stream  uintptr
	blas    *blasHandle
	dnn     *dnnState // nil without cuDNN
	useDNN  bool
	mod     *Module   // the package's own kernels
	modules []*Module // every loaded module, mod first
	log     *slog.Logger
	alloc   *Allocator
	closed  bool
	launchM sync.Mutex // guards the launch argument block
	args    launchArgs
}

// Available reports whether a usable CUDA GPU is present: the driver loads, reports at
// least one device, and cuBLAS and NVRTC load. When not, the string says why. It never
// panics and holds no resources.
func Available() (bool, string) {
	drv, err := loadDriver()
	if err != nil {
		return false, err.Error()
	}
	var n int32
	if err := drv.call("cuDeviceGetCount", drv.cuDeviceGetCount, uintptr(unsafe.Pointer(&n))); err != nil {
		return false, err.Error()
	}
	if n == 0 {
		return false, "cuda: the driver reports no GPU"
	}
	if _, err := loadBLAS(); err != nil {
		return false, err.Error()
	}
	if _, err := loadNVRTC(); err != nil {
		return false, err.Error()
	}
	return true, fmt.Sprintf("cuda: %d GPU(s), driver %s", n, drv.path)
}

// Open retains the primary context of GPU ordinal, creates a stream and a cuBLAS handle,
// and compiles (or loads from the cache) the package's kernels.
func Open(ordinal int, opts Options) (*Device, error) {
	drv, err := loadDriver()
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	d := &Device{drv: drv, ordinal: ordinal, opts: opts, log: opts.Logger}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	var count int32
	if err := drv.call("cuDeviceGetCount", drv.cuDeviceGetCount, uintptr(unsafe.Pointer(&count))); err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= int(count) {
		return nil, fmt.Errorf("cuda: no GPU %d (the driver reports %d)", ordinal, count)
	}
	if err := drv.call("cuDeviceGet", drv.cuDeviceGet, uintptr(unsafe.Pointer(&d.dev)), uintptr(ordinal)); err != nil {
		return nil, err
	}
	var name [256]byte
	if err := drv.call("cuDeviceGetName", drv.cuDeviceGetName, uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), uintptr(d.dev)); err != nil {
		return nil, err
	}
	d.name = gostring(&name[0])
	for _, a := range []struct {
		attr int
		dst  *int
	}{{attrComputeMajor, &d.major}, {attrComputeMinor, &d.minor}, {attrMultiprocessorCount, &d.sms}} {
		var v int32
		if err := drv.call("cuDeviceGetAttribute", drv.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&v)), uintptr(a.attr), uintptr(d.dev)); err != nil {
			return nil, err
		}
		*a.dst = int(v)
	}
	var ver int32
	if err := drv.call("cuDriverGetVersion", drv.cuDriverGetVersion, uintptr(unsafe.Pointer(&ver))); err != nil {
		return nil, err
	}
	d.driver = int(ver)
	if err := drv.call("cuDeviceTotalMem_v2", drv.cuDeviceTotalMem, uintptr(unsafe.Pointer(&d.total)), uintptr(d.dev)); err != nil {
		return nil, err
	}
	if err := drv.call("cuDevicePrimaryCtxRetain", drv.cuDevicePrimaryCtxRetain, uintptr(unsafe.Pointer(&d.ctx)), uintptr(d.dev)); err != nil {
		return nil, err
	}
	if err := drv.call("cuCtxSetCurrent", drv.cuCtxSetCurrent, d.ctx); err != nil {
		d.releaseCtx()
		return nil, err
	}
	// A non-blocking stream: no work of ours runs on the legacy default stream
	// (cuBLAS and cuDNN are bound to this stream), so nothing needs the legacy
	// stream's implicit ordering, which would serialise this stream with the copy
	// streams of NewStream.
	if err := drv.call("cuStreamCreate", drv.cuStreamCreate, uintptr(unsafe.Pointer(&d.stream)), streamNonBlocking); err != nil {
		d.releaseCtx()
		return nil, err
	}
	d.alloc = newAllocator(d)
	if d.blas, err = newBLAS(d); err != nil {
		d.closeLocked()
		return nil, err
	}
	if d.mod, err = d.loadModuleLocked(builtinModule()); err != nil {
		d.closeLocked()
		return nil, err
	}
	d.modules = append(d.modules, d.mod)
	// cuDNN when it loads, else (decided here, logged as a warning) the package's
	// im2col kernels with cuBLAS for every convolution.
	d.dnn = newDNN(d)
	d.useDNN = d.dnn != nil
	return d, nil
}

// enter locks the calling goroutine to its thread and makes the device's context
// current there. Every exported method that calls the driver starts with
// `if err := d.enter(); err != nil { return err }; defer d.leave()`.
func (d *Device) enter() error {
	runtime.LockOSThread()
	if d.closed {
		runtime.UnlockOSThread()
		return errors.New("cuda: device is closed")
	}
	if err := d.drv.call("cuCtxSetCurrent", d.drv.cuCtxSetCurrent, d.ctx); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	return nil
}

// leave undoes enter.
func (d *Device) leave() { runtime.UnlockOSThread() }

// Close waits for queued work, frees every cached and live buffer, and releases the
// primary context. The Device is unusable afterwards.
func (d *Device) Close() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	err := d.drv.call("cuStreamSynchronize", d.drv.cuStreamSynchronize, d.stream)
	d.closeLocked()
	return err
}

// closeLocked tears down in reverse order of Open; the context must be current.
func (d *Device) closeLocked() {
	for _, m := range d.modules {
		m.unload()
	}
	if d.dnn != nil {
		d.dnn.close()
	}
	if d.blas != nil {
		d.blas.destroy()
	}
	if d.alloc != nil {
		d.alloc.releaseAll()
	}
	if d.stream != 0 {
		d.drv.raw(d.drv.cuStreamDestroy, d.stream)
	}
	d.releaseCtx()
	d.closed = true
}

func (d *Device) releaseCtx() {
	if d.ctx != 0 {
		d.drv.raw(d.drv.cuDevicePrimaryCtxRelease, uintptr(d.dev))
		d.ctx = 0
	}
}

// Name is the GPU's name, e.g. "NVIDIA H100 80GB HBM3".
func (d *Device) Name() string { return d.name }

// String describes the device in one line.
func (d *Device) String() string {
	return fmt.Sprintf("%s (sm_%d%d, %d SMs, %.1f GiB, driver %d.%d)", d.name, d.major, d.minor, d.sms,
		float64(d.total)/(1<<30), d.driver/1000, d.driver%1000/10)
}

// Sync waits until all queued work on the device's stream is done and reports any
// asynchronous error.
func (d *Device) Sync() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.syncLocked()
}

func (d *Device) syncLocked() error {
	return d.drv.call("cuStreamSynchronize", d.drv.cuStreamSynchronize, d.stream)
}

// MemInfo returns the driver's free and total device memory in bytes.
func (d *Device) MemInfo() (free, total uint64, err error) {
	if err := d.enter(); err != nil {
		return 0, 0, err
	}
	defer d.leave()
	err = d.drv.call("cuMemGetInfo_v2", d.drv.cuMemGetInfo, uintptr(unsafe.Pointer(&free)), uintptr(unsafe.Pointer(&total)))
	return free, total, err
}

// launchArgs is the block cuLaunchKernel reads kernel parameters from: vals holds each
// parameter in an 8-byte slot (4-byte parameters in its low half, little-endian) and
// ptrs points at the slots. It lives inside the heap-allocated Device, so it never moves.
type launchArgs struct {
	vals [24]Arg
	ptrs [24]unsafe.Pointer
}
