package cuda

import (
	"fmt"
	"strings"

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
		if err := n.call("nvrtcVersion", n.version, ptr(&major), ptr(&minor)); err != nil {
			return nil, err
		}
		n.major, n.minor = int(major), int(minor)
		return n, nil
	})
}

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
	if err := n.call("nvrtcCreateProgram", n.create, ptr(&prog), ptr(&csrc[0]), ptr(&cname[0]), 0, 0, 0); err != nil {
		return nil, err
	}
	defer purego.SyscallN(n.destroy, ptr(&prog))
	copts := make([][]byte, len(opts))
	optPtrs := make([]*byte, len(opts))
	for i, o := range opts {
		copts[i] = cstr(o)
		optPtrs[i] = &copts[i][0]
	}
	cerr := n.call("nvrtcCompileProgram", n.compile, prog, uintptr(len(opts)), ptr(&optPtrs[0]))
	var logSize uintptr
	_ = n.call("nvrtcGetProgramLogSize", n.logSize, prog, ptr(&logSize))
	var log string
	if logSize > 1 {
		buf := make([]byte, logSize)
		if n.call("nvrtcGetProgramLog", n.log, prog, ptr(&buf[0])) == nil {
			log = strings.TrimRight(string(buf), "\x00\n ")
		}
	}
	if cerr != nil {
		return nil, fmt.Errorf("compile %s (%s): %w\n%s", name, strings.Join(opts, " "), cerr, log)
	}
	var size uintptr
	if err := n.call("nvrtcGetCUBINSize", n.cubinSize, prog, ptr(&size)); err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, fmt.Errorf("compile %s: NVRTC produced no CUBIN for %s", name, strings.Join(opts, " "))
	}
	out := make([]byte, size)
	if err := n.call("nvrtcGetCUBIN", n.cubin, prog, ptr(&out[0])); err != nil {
		return nil, err
	}
	return out, nil
}
