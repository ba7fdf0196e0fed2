package cuda

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

type nvrtcAPI struct {
	path                                            string
	major, minor                                    int
	version, create, compile, logSize, log, destroy uintptr
	cubinSize, cubin, errString                     uintptr
}

var nvrtcLoad loadOnce[nvrtcAPI]

func loadNVRTC() (*nvrtcAPI, error) {
	return nvrtcLoad.get(func() (*nvrtcAPI, error) {
		h, path, err := libNVRTC.open()
		if err != nil {
			return nil, err
		}
		s := symbols{lib: path, handle: h}
		n := &nvrtcAPI{
			path:      path,
			version:   s.get("nvrtcVersion"),
			create:    s.get("nvrtcCreateProgram"),
			compile:   s.get("nvrtcCompileProgram"),
			logSize:   s.get("nvrtcGetProgramLogSize"),
			log:       s.get("nvrtcGetProgramLog"),
			destroy:   s.get("nvrtcDestroyProgram"),
			cubinSize: s.get("nvrtcGetCUBINSize"),
			cubin:     s.get("nvrtcGetCUBIN"),
			errString: s.get("nvrtcGetErrorString"),
		}
		if s.err != nil {
			return nil, s.err
		}
		var major, minor int32
		if err := n.call("nvrtcVersion", n.version, uintptr(unsafe.Pointer(&major)), uintptr(unsafe.Pointer(&minor))); err != nil {
			return nil, err
		}
		n.major, n.minor = int(major), int(minor)
		return n, nil
	})
}

// call calls fn and turns a failure status into an error naming the call.
//
// uintptr(unsafe.Pointer(&x)) written in a call's argument list keeps x alive
// and in place until the call returns (go:uintptrescapes).
//
//go:uintptrescapes
func (n *nvrtcAPI) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if st := int(int32(r)); st != 0 {
		p, _, _ := purego.SyscallN(n.errString, uintptr(st))
		return fmt.Errorf("cuda: %s: nvrtcResult %d: %s", name, st, gostring(bytePtr(p)))
	}
	return nil
}

// compileCUBIN compiles CUDA C source to a CUBIN for arch (e.g. "sm_90").
func (n *nvrtcAPI) compileCUBIN(src, name string, opts []string) ([]byte, error) {
	var prog uintptr
	csrc, cname := cstr(src), cstr(name)
	if err := n.call("nvrtcCreateProgram", n.create, uintptr(unsafe.Pointer(&prog)), uintptr(unsafe.Pointer(&csrc[0])), uintptr(unsafe.Pointer(&cname[0])), 0, 0, 0); err != nil {
		return nil, err
	}
	defer func() { _ = n.call("nvrtcDestroyProgram", n.destroy, uintptr(unsafe.Pointer(&prog))) }()
	copts := make([][]byte, len(opts))
	optPtrs := make([]*byte, len(opts))
	for i, o := range opts {
		copts[i] = cstr(o)
		optPtrs[i] = &copts[i][0]
	}
	cerr := n.call("nvrtcCompileProgram", n.compile, prog, uintptr(len(opts)), uintptr(unsafe.Pointer(&optPtrs[0])))
	var logSize uintptr
	_ = n.call("nvrtcGetProgramLogSize", n.logSize, prog, uintptr(unsafe.Pointer(&logSize)))
	var log string
	if logSize > 1 {
		buf := make([]byte, logSize)
		if n.call("nvrtcGetProgramLog", n.log, prog, uintptr(unsafe.Pointer(&buf[0]))) == nil {
			log = strings.TrimRight(string(buf), "\x00\n ")
		}
	}
	if cerr != nil {
		return nil, fmt.Errorf("compile %s (%s): %w\n%s", name, strings.Join(opts, " "), cerr, log)
	}
	var size uintptr
	if err := n.call("nvrtcGetCUBINSize", n.cubinSize, prog, uintptr(unsafe.Pointer(&size))); err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, fmt.Errorf("compile %s: NVRTC produced no CUBIN for %s", name, strings.Join(opts, " "))
	}
	out := make([]byte, size)
	if err := n.call("nvrtcGetCUBIN", n.cubin, prog, uintptr(unsafe.Pointer(&out[0]))); err != nil {
		return nil, err
	}
	return out, nil
}
