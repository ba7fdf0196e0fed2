package cuda

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

//go:embed kernels/*.cu kernels/*.cuh
var kernelFS embed.FS

// CacheEnv names the variable that overrides the compiled-kernel cache folder.
const CacheEnv = "PIPELINE_CUDA_CACHE"

// kernelSource concatenates the embedded kernel files in name order, the shared header first.
func kernelSource() (string, error) {
	var b strings.Builder
	head, err := kernelFS.ReadFile("kernels/common.cuh")
	if err != nil {
		return "", err
	}
	b.Write(head)
	names, err := fs.Glob(kernelFS, "kernels/*.cu")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, name := range names {
		src, err := kernelFS.ReadFile(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n// ---- %s ----\n", name)
		b.Write(src)
	}
	return b.String(), nil
}

// module is the loaded kernel image with its functions looked up on demand.
type module struct {
	d     *Device
	h     uintptr
	mu    sync.Mutex
	funcs map[string]uintptr
	// Cached reports whether the image came from the disk cache.
	cached bool
	key    string
}

// cacheDir resolves where compiled kernels live; "" means no disk cache.
func cacheDir(opt string) string {
	switch {
	case opt == "-":
		return ""
	case opt != "":
		return opt
	case os.Getenv(CacheEnv) != "":
		return os.Getenv(CacheEnv)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(base, "pipeline", "cuda")
}

// loadModule compiles the kernels for the device (or reads them from the cache) and
// loads the image; the context must be current.
func loadModule(d *Device) (*module, error) {
	nv, err := loadNVRTC()
	if err != nil {
		return nil, err
	}
	src, err := kernelSource()
	if err != nil {
		return nil, fmt.Errorf("cuda: kernel sources: %w", err)
	}
	arch := fmt.Sprintf("sm_%d%d", d.major, d.minor)
	opts := []string{"--gpu-architecture=" + arch, "--std=c++17", "-default-device"}
	h := sha256.New()
	fmt.Fprintf(h, "src=%s\nopts=%s\ndriver=%d\nnvrtc=%d.%d\n", src, strings.Join(opts, " "), d.driver, nv.major, nv.minor)
	key := hex.EncodeToString(h.Sum(nil))[:32]

	m := &module{d: d, funcs: map[string]uintptr{}, key: key}
	dir := cacheDir(d.opts.CacheDir)
	var image []byte
	path := ""
	if dir != "" {
		path = filepath.Join(dir, "kernels-"+arch+"-"+key+".cubin")
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			image, m.cached = b, true
		}
	}
	if image == nil {
		if image, err = nv.compileCUBIN(src, "pipeline_kernels.cu", opts); err != nil {
			return nil, fmt.Errorf("cuda: kernels for %s: %w", arch, err)
		}
		if path != "" {
			if err := writeCache(path, image); err != nil {
				slog.Warn("cuda: kernel cache not written", "path", path, "err", err)
			}
		}
	}
	if err := d.drv.call("cuModuleLoadData", d.drv.cuModuleLoadData, ptr(&m.h), ptr(&image[0])); err != nil {
		if m.cached {
			// A damaged cache file: compile afresh.
			slog.Warn("cuda: cached kernels failed to load, recompiling", "path", path, "err", err)
			_ = os.Remove(path)
			return loadModule(d)
		}
		return nil, fmt.Errorf("cuda: load kernels for %s: %w", arch, err)
	}
	return m, nil
}

// writeCache stores the image atomically (temp file, then rename).
func writeCache(path string, image []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".kernels-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(image); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

// fn returns the kernel named name; the context must be current.
func (m *module) fn(name string) (uintptr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.funcs[name]; ok {
		return f, nil
	}
	var f uintptr
	cname := cstr(name)
	if err := m.d.drv.call("cuModuleGetFunction "+name, m.d.drv.cuModuleGetFunction, ptr(&f), m.h, ptr(&cname[0])); err != nil {
		return 0, err
	}
	m.funcs[name] = f
	return f, nil
}

func (m *module) unload() {
	if m.h != 0 {
		m.d.drv.raw(m.d.drv.cuModuleUnload, m.h)
		m.h = 0
	}
}

// KernelsFromCache reports whether Open found the compiled kernels in the disk cache.
func (d *Device) KernelsFromCache() bool { return d.mod.cached }
