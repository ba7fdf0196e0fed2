package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ebitengine/purego"
)

// LibraryPathEnv names the environment variable holding a colon-separated list of
// directories searched for the NVIDIA libraries before the system's default lookup.
const LibraryPathEnv = "PIPELINE_CUDA_LIBRARY_PATH"

// library describes one shared library we load and how to tell the user to get it.
type library struct {
	what    string   // human name
	sonames []string // tried in order
	install string   // what to install when none loads
}

var (
	libCUDA = library{
		what:    "CUDA driver",
		sonames: []string{"libcuda.so.1", "libcuda.so"},
		install: "install the NVIDIA driver (it ships libcuda.so.1)",
	}
	libCUBLAS = library{
		what:    "cuBLAS",
		sonames: []string{"libcublas.so.13", "libcublas.so.12"},
		install: "install the CUDA 13 or 12 toolkit libraries (libcublas), e.g. the nvidia-cublas-cu13 wheel or the cuda-libraries package",
	}
	libNVRTC = library{
		what:    "NVRTC",
		sonames: []string{"libnvrtc.so.13", "libnvrtc.so.12"},
		install: "install the CUDA 13 or 12 runtime compiler (libnvrtc), e.g. the nvidia-cuda-nvrtc-cu13 wheel or the cuda-nvrtc package",
	}
	libCUDNN = library{
		what:    "cuDNN",
		sonames: []string{"libcudnn.so.9"},
		install: "install cuDNN 9 (libcudnn.so.9)",
	}
)

// ErrNoLibrary is wrapped by every error about a shared library that could not be loaded.
var ErrNoLibrary = errors.New("cuda: library not found")

// candidates lists the paths to try for a soname: each override directory first, then
// the bare soname for the dynamic loader's own search.
func candidates(soname string) []string {
	var out []string
	for _, dir := range filepath.SplitList(os.Getenv(LibraryPathEnv)) {
		if dir != "" {
			out = append(out, filepath.Join(dir, soname))
		}
	}
	return append(out, soname)
}

// open loads the first soname of lib that the loader finds.
func (lib library) open() (uintptr, string, error) {
	var tried []string
	for _, soname := range lib.sonames {
		for _, path := range candidates(soname) {
			h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
			if err == nil {
				return h, path, nil
			}
			tried = append(tried, fmt.Sprintf("%s (%v)", path, err))
		}
	}
	return 0, "", fmt.Errorf("%w: %s: tried %s; %s, or point %s at the folder holding it",
		ErrNoLibrary, lib.what, strings.Join(tried, ", "), lib.install, LibraryPathEnv)
}

// symbols resolves named symbols of a loaded library into function pointers.
type symbols struct {
	lib    string
	handle uintptr
	err    error
}

// get returns the address of name, recording the first failure in s.err.
func (s *symbols) get(name string) uintptr {
	if s.err != nil {
		return 0
	}
	p, err := purego.Dlsym(s.handle, name)
	if err != nil || p == 0 {
		s.err = fmt.Errorf("cuda: %s lacks symbol %s (too old? want CUDA 12 or 13): %v", s.lib, name, err)
		return 0
	}
	return p
}

// optional returns the address of name or 0, never failing.
func (s *symbols) optional(name string) uintptr {
	p, err := purego.Dlsym(s.handle, name)
	if err != nil {
		return 0
	}
	return p
}

// loadOnce memoises a library load for the whole process.
type loadOnce[T any] struct {
	once sync.Once
	val  *T
	err  error
}

func (l *loadOnce[T]) get(load func() (*T, error)) (*T, error) {
	l.once.Do(func() { l.val, l.err = load() })
	return l.val, l.err
}
