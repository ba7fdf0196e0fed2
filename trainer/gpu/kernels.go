package gpu

import (
	"embed"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// The kernels trainer/cuda does not export, compiled with NVRTC when a Step
// opens. They are launched on the legacy default stream (0): a blocking
// stream such as trainer/cuda's waits for legacy-stream work queued before
// its own and the legacy stream waits for it, so everything stays in
// program order without host synchronisation.

//go:embed kernels/*.cu
var kernelFS embed.FS

const (
	block        = 256
	legacyStream = 0
)

// kernelAPI is the handful of driver and NVRTC entry points the module needs.
type kernelAPI struct {
	ctxRetain, ctxRelease, ctxSetCurrent, deviceGet            uintptr
	moduleLoadData, moduleGetFunction, moduleUnload, launch    uintptr
	nvrtcCreate, nvrtcCompile, nvrtcLogSize, nvrtcLog          uintptr
	nvrtcDestroy, nvrtcCubinSize, nvrtcCubin, nvrtcErrorString uintptr
}

var (
	apiOnce sync.Once
	api     *kernelAPI
	apiErr  error
)

// dlopenFirst opens the first soname the loader finds, honouring
// cuda.LibraryPathEnv like trainer/cuda does (a library already loaded by
// trainer/cuda is found by its soname).
func dlopenFirst(sonames ...string) (uintptr, error) {
	var tried []string
	for _, so := range sonames {
		paths := []string{}
		for _, dir := range filepath.SplitList(os.Getenv(cuda.LibraryPathEnv)) {
			if dir != "" {
				paths = append(paths, filepath.Join(dir, so))
			}
		}
		for _, p := range append(paths, so) {
			h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
			if err == nil {
				return h, nil
			}
			tried = append(tried, p)
		}
	}
	return 0, fmt.Errorf("gpu: cannot load any of %s", strings.Join(tried, ", "))
}

func loadKernelAPI() (*kernelAPI, error) {
	apiOnce.Do(func() {
		drv, err := dlopenFirst("libcuda.so.1", "libcuda.so")
		if err != nil {
			apiErr = err
			return
		}
		nv, err := dlopenFirst("libnvrtc.so.13", "libnvrtc.so.12")
		if err != nil {
			apiErr = err
			return
		}
		var missing []string
		sym := func(h uintptr, name string) uintptr {
			p, err := purego.Dlsym(h, name)
			if err != nil || p == 0 {
				missing = append(missing, name)
			}
			return p
		}
		a := &kernelAPI{
			ctxRetain:         sym(drv, "cuDevicePrimaryCtxRetain"),
			ctxRelease:        sym(drv, "cuDevicePrimaryCtxRelease_v2"),
			ctxSetCurrent:     sym(drv, "cuCtxSetCurrent"),
			deviceGet:         sym(drv, "cuDeviceGet"),
			moduleLoadData:    sym(drv, "cuModuleLoadData"),
			moduleGetFunction: sym(drv, "cuModuleGetFunction"),
			moduleUnload:      sym(drv, "cuModuleUnload"),
			launch:            sym(drv, "cuLaunchKernel"),
			nvrtcCreate:       sym(nv, "nvrtcCreateProgram"),
			nvrtcCompile:      sym(nv, "nvrtcCompileProgram"),
			nvrtcLogSize:      sym(nv, "nvrtcGetProgramLogSize"),
			nvrtcLog:          sym(nv, "nvrtcGetProgramLog"),
			nvrtcDestroy:      sym(nv, "nvrtcDestroyProgram"),
			nvrtcCubinSize:    sym(nv, "nvrtcGetCUBINSize"),
			nvrtcCubin:        sym(nv, "nvrtcGetCUBIN"),
			nvrtcErrorString:  sym(nv, "nvrtcGetErrorString"),
		}
		if len(missing) > 0 {
			apiErr = fmt.Errorf("gpu: driver or NVRTC lacks %s", strings.Join(missing, ", "))
			return
		}
		api = a
	})
	return api, apiErr
}

func call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if r := int32(r); r != 0 {
		return fmt.Errorf("gpu: %s: CUresult %d", name, r)
	}
	return nil
}

func cstr(s string) []byte { return append([]byte(s), 0) }

// ptr is the address of a Go value for passing to C. The never-taken store
// makes every such value escape to the heap, which does not move: a
// goroutine stack can grow (move) between taking the address and the C call.
func ptr[T any](v *T) uintptr {
	if escapeNever {
		escapeSink = v
	}
	return uintptr(unsafe.Pointer(v))
}

var (
	escapeNever bool
	escapeSink  any
)

// kernels is this package's compiled module in the device's primary context.
type kernels struct {
	a     *kernelAPI
	dev   int32
	ctx   uintptr
	mod   uintptr
	sms   int
	funcs map[string]uintptr
	mu    sync.Mutex
	vals  [16]uint64
	ptrs  [16]unsafe.Pointer
}

func kernelSource() (string, error) {
	names, err := fs.Glob(kernelFS, "kernels/*.cu")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		src, err := kernelFS.ReadFile(n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "// ---- %s ----\n%s\n", n, src)
	}
	return b.String(), nil
}

// openKernels retains GPU ordinal's primary context (the one trainer/cuda
// uses) and compiles and loads the package's kernels for arch (e.g. 90).
func openKernels(ordinal, arch, sms int) (*kernels, error) {
	a, err := loadKernelAPI()
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	k := &kernels{a: a, sms: sms, funcs: map[string]uintptr{}}
	if err := call("cuDeviceGet", a.deviceGet, ptr(&k.dev), uintptr(ordinal)); err != nil {
		return nil, err
	}
	if err := call("cuDevicePrimaryCtxRetain", a.ctxRetain, ptr(&k.ctx), uintptr(k.dev)); err != nil {
		return nil, err
	}
	if err := call("cuCtxSetCurrent", a.ctxSetCurrent, k.ctx); err != nil {
		k.close()
		return nil, err
	}
	src, err := kernelSource()
	if err != nil {
		k.close()
		return nil, err
	}
	image, err := a.compile(src, fmt.Sprintf("sm_%d", arch))
	if err != nil {
		k.close()
		return nil, err
	}
	if err := call("cuModuleLoadData", a.moduleLoadData, ptr(&k.mod), uintptr(unsafe.Pointer(&image[0]))); err != nil {
		k.close()
		return nil, err
	}
	return k, nil
}

func (a *kernelAPI) nvrtcErr(name string, r uintptr) error {
	p, _, _ := purego.SyscallN(a.nvrtcErrorString, r)
	msg := ""
	if p != 0 {
		bp := *(**byte)(unsafe.Pointer(&p))
		n := 0
		for *(*byte)(unsafe.Add(unsafe.Pointer(bp), n)) != 0 {
			n++
		}
		msg = string(unsafe.Slice(bp, n))
	}
	return fmt.Errorf("gpu: %s: nvrtcResult %d %s", name, int32(r), msg)
}

// compile turns CUDA C into a CUBIN for arch ("sm_90").
func (a *kernelAPI) compile(src, arch string) ([]byte, error) {
	var prog uintptr
	csrc, cname := cstr(src), cstr("gpu_kernels.cu")
	if r, _, _ := purego.SyscallN(a.nvrtcCreate, ptr(&prog), ptr(&csrc[0]), ptr(&cname[0]), 0, 0, 0); int32(r) != 0 {
		return nil, a.nvrtcErr("nvrtcCreateProgram", r)
	}
	defer purego.SyscallN(a.nvrtcDestroy, ptr(&prog))
	opts := []string{"--gpu-architecture=" + arch, "--std=c++17", "-default-device"}
	copts := make([][]byte, len(opts))
	optPtrs := make([]*byte, len(opts))
	for i, o := range opts {
		copts[i] = cstr(o)
		optPtrs[i] = &copts[i][0]
	}
	r, _, _ := purego.SyscallN(a.nvrtcCompile, prog, uintptr(len(opts)), ptr(&optPtrs[0]))
	runtime.KeepAlive(copts)
	if int32(r) != 0 {
		var size uintptr
		purego.SyscallN(a.nvrtcLogSize, prog, ptr(&size))
		log := ""
		if size > 1 {
			buf := make([]byte, size)
			purego.SyscallN(a.nvrtcLog, prog, ptr(&buf[0]))
			log = strings.TrimRight(string(buf), "\x00\n ")
		}
		return nil, fmt.Errorf("%w\n%s", a.nvrtcErr("nvrtcCompileProgram", r), log)
	}
	var size uintptr
	if r, _, _ := purego.SyscallN(a.nvrtcCubinSize, prog, ptr(&size)); int32(r) != 0 || size == 0 {
		return nil, a.nvrtcErr("nvrtcGetCUBINSize", r)
	}
	out := make([]byte, size)
	if r, _, _ := purego.SyscallN(a.nvrtcCubin, prog, ptr(&out[0])); int32(r) != 0 {
		return nil, a.nvrtcErr("nvrtcGetCUBIN", r)
	}
	return out, nil
}

func (k *kernels) close() {
	if k == nil {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if k.mod != 0 {
		purego.SyscallN(k.a.ctxSetCurrent, k.ctx)
		purego.SyscallN(k.a.moduleUnload, k.mod)
		k.mod = 0
	}
	if k.ctx != 0 {
		purego.SyscallN(k.a.ctxRelease, uintptr(k.dev))
		k.ctx = 0
	}
}

// Kernel argument encoders: one 8-byte slot per parameter.
func aPtr(p uintptr) uint64    { return uint64(p) }
func aInt(v int) uint64        { return uint64(uint32(int32(v))) }
func aI64(v int64) uint64      { return uint64(v) }
func aF32(v float32) uint64    { return uint64(math.Float32bits(v)) }
func aT(t *cuda.Tensor) uint64 { return uint64(t.Ptr()) }

// launch queues kernel name on the legacy stream with grid x block threads.
func (k *kernels) launch(name string, grid int, args ...uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := call("cuCtxSetCurrent", k.a.ctxSetCurrent, k.ctx); err != nil {
		return err
	}
	f, ok := k.funcs[name]
	if !ok {
		cname := cstr(name)
		if err := call("cuModuleGetFunction "+name, k.a.moduleGetFunction, ptr(&f), k.mod, ptr(&cname[0])); err != nil {
			return err
		}
		k.funcs[name] = f
	}
	if len(args) > len(k.vals) {
		return fmt.Errorf("gpu: kernel %s: %d arguments, at most %d", name, len(args), len(k.vals))
	}
	for i, v := range args {
		k.vals[i] = v
		k.ptrs[i] = unsafe.Pointer(&k.vals[i])
	}
	return call("cuLaunchKernel "+name, k.a.launch, f, uintptr(max(1, grid)), 1, 1, block, 1, 1, 0, legacyStream,
		uintptr(unsafe.Pointer(&k.ptrs[0])), 0)
}

// gridFor sizes a grid-stride launch over n items.
func (k *kernels) gridFor(n int64) int {
	g := (n + block - 1) / block
	if lim := int64(k.sms * 32); g > lim {
		g = lim
	}
	return int(max(1, g))
}

// softmaxRows writes p = softmax(s) over rows of length l (p may alias s).
func (k *kernels) softmaxRows(p, s uintptr, rows int64, l int) error {
	return k.launch("softmax_rows", k.gridFor(rows*32), aPtr(p), aPtr(s), aI64(rows), aInt(l))
}

// softmaxRowsBackward writes ds = scale*p*(dp - rowsum(dp*p)) (ds may alias dp).
func (k *kernels) softmaxRowsBackward(ds, dp, p uintptr, rows int64, l int, scale float32) error {
	return k.launch("softmax_rows_bwd", k.gridFor(rows*32), aPtr(ds), aPtr(dp), aPtr(p), aI64(rows), aInt(l), aF32(scale))
}
