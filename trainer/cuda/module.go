package cuda

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"
)

//go:embed kernels/*.cu kernels/*.cuh
var kernelFS embed.FS

// CacheEnv names the variable that overrides the compiled-kernel cache folder.
const CacheEnv = "PIPELINE_CUDA_CACHE"

// commonHeader is prepended to every module: the shared device helpers
// (warp and block reductions, GRID_STRIDE).
const commonHeader = "kernels/common.cuh"

// ModuleSource is one NVRTC program: the package's shared helpers
// (kernels/common.cuh) followed by every *.cu file at the root of Files, in
// name order. The package's own kernels are one such module; trainer/gpu
// loads its kernels as another.
type ModuleSource struct {
	Name  string // names the module in logs, errors and its cache file
	Files fs.FS
}

// Source returns the program text NVRTC compiles.
func (m ModuleSource) Source() (string, error) {
	var b strings.Builder
	head, err := kernelFS.ReadFile(commonHeader)
	if err != nil {
		return "", err
	}
	b.Write(head)
	names, err := fs.Glob(m.Files, "*.cu")
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "", fmt.Errorf("cuda: module %s has no .cu files", m.Name)
	}
	sort.Strings(names)
	for _, name := range names {
		src, err := fs.ReadFile(m.Files, name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n// ---- %s/%s ----\n", m.Name, name)
		b.Write(src)
	}
	return b.String(), nil
}

// builtinModule is the package's own kernels.
func builtinModule() ModuleSource {
	sub, err := fs.Sub(kernelFS, "kernels")
	if err != nil {
		panic(err) // the embedded folder always exists
	}
	return ModuleSource{Name: "cuda", Files: sub}
}

// Origin says where a loaded module's compiled image came from.
type Origin string

const (
	// OriginCompiled: NVRTC compiled it in this call.
	OriginCompiled Origin = "compiled"
	// OriginDisk: read from the on-disk kernel cache.
	OriginDisk Origin = "disk cache"
	// OriginProcess: compiled or read earlier by this process.
	OriginProcess Origin = "process cache"
)

// ModuleInfo describes a module a device loaded.
type ModuleInfo struct {
	Name   string
	Origin Origin
	Key    string // hash of source, options, driver and NVRTC version
}

// Module is a compiled module loaded in a device's context; launch its kernels with
// [Module.Launch].
type Module struct {
	d     *Device
	info  ModuleInfo
	h     uintptr
	mu    sync.Mutex
	funcs map[string]uintptr
}

// images holds every image this process compiled or read, by cache path (or by key
// when the disk cache is off), so a second device or step compiles nothing.
var images sync.Map // string -> []byte

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

// LoadModule compiles src for the device, or takes its image from this process's
// cache or the disk cache (Options.CacheDir), and loads it. The device unloads it on
// Close.
func (d *Device) LoadModule(src ModuleSource) (*Module, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	m, err := d.loadModuleLocked(src)
	if err != nil {
		return nil, err
	}
	d.modules = append(d.modules, m)
	return m, nil
}

// loadModuleLocked is LoadModule with the context current.
func (d *Device) loadModuleLocked(src ModuleSource) (*Module, error) {
	nv, err := loadNVRTC()
	if err != nil {
		return nil, err
	}
	text, err := src.Source()
	if err != nil {
		return nil, fmt.Errorf("cuda: module %s: sources: %w", src.Name, err)
	}
	arch := fmt.Sprintf("sm_%d%d", d.major, d.minor)
	opts := []string{"--gpu-architecture=" + arch, "--std=c++17", "-default-device"}
	h := sha256.New()
	fmt.Fprintf(h, "src=%s\nopts=%s\ndriver=%d\nnvrtc=%d.%d\n", text, strings.Join(opts, " "), d.driver, nv.major, nv.minor)
	key := hex.EncodeToString(h.Sum(nil))[:32]
	m := &Module{d: d, funcs: map[string]uintptr{}, info: ModuleInfo{Name: src.Name, Key: key}}

	dir := cacheDir(d.opts.CacheDir)
	path, memKey := "", key
	if dir != "" {
		path = filepath.Join(dir, src.Name+"-"+arch+"-"+key+".cubin")
		memKey = path
	}
	start := time.Now()
	var image []byte
	if v, ok := images.Load(memKey); ok {
		image, m.info.Origin = v.([]byte), OriginProcess
	} else if b, err := readCache(path); err == nil && len(b) > 0 {
		image, m.info.Origin = b, OriginDisk
	} else {
		if image, err = nv.compileCUBIN(text, src.Name+".cu", opts); err != nil {
			return nil, fmt.Errorf("cuda: module %s for %s: %w", src.Name, arch, err)
		}
		m.info.Origin = OriginCompiled
		if path != "" {
			if err := writeCache(path, image); err != nil {
				d.log.Warn("cuda: kernel cache not written", slog.String("path", path), slog.Any("err", err))
			}
		}
	}
	err = d.drv.call("cuModuleLoadData", d.drv.cuModuleLoadData, uintptr(unsafe.Pointer(&m.h)), uintptr(unsafe.Pointer(&image[0])))
	if err != nil {
		if m.info.Origin == OriginDisk {
			// A damaged cache file: compile afresh.
			d.log.Warn("cuda: cached kernels failed to load, recompiling", slog.String("path", path), slog.Any("err", err))
			if rerr := os.Remove(path); rerr != nil {
				return nil, errors.Join(err, rerr)
			}
			return d.loadModuleLocked(src)
		}
		return nil, fmt.Errorf("cuda: load module %s for %s: %w", src.Name, arch, err)
	}
	images.Store(memKey, image)
	d.log.Debug("cuda: module loaded", slog.String("module", src.Name), slog.String("origin", string(m.info.Origin)),
		slog.String("arch", arch), slog.Duration("took", time.Since(start)))
	return m, nil
}

// readCache reads a cached image; path "" means no disk cache.
func readCache(path string) ([]byte, error) {
	if path == "" {
		return nil, os.ErrNotExist
	}
	return os.ReadFile(path)
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
func (m *Module) fn(name string) (uintptr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.funcs[name]; ok {
		return f, nil
	}
	var f uintptr
	cname := cstr(name)
	if err := m.d.drv.call("cuModuleGetFunction "+name, m.d.drv.cuModuleGetFunction,
		uintptr(unsafe.Pointer(&f)), m.h, uintptr(unsafe.Pointer(&cname[0]))); err != nil {
		return 0, fmt.Errorf("cuda: module %s: %w", m.info.Name, err)
	}
	m.funcs[name] = f
	return f, nil
}

func (m *Module) unload() {
	if m.h != 0 {
		m.d.drv.raw(m.d.drv.cuModuleUnload, m.h)
		m.h = 0
	}
}

// Info describes the module.
func (m *Module) Info() ModuleInfo { return m.info }

// Modules describes every module the device loaded, its own kernels first.
func (d *Device) Modules() []ModuleInfo {
	out := make([]ModuleInfo, len(d.modules))
	for i, m := range d.modules {
		out[i] = m.info
	}
	return out
}
