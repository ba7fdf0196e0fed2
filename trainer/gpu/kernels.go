package gpu

import (
	"embed"
	"io/fs"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// The kernels trainer/cuda does not own (the attention softmax, the direct temporal
// convolution's helpers, AdamW): CUDA C under kernels/, one module that trainer/cuda
// compiles, caches and loads like its own, launched on the device's stream.

//go:embed kernels/*.cu
var kernelFS embed.FS

// kernelModule is the package's module source.
func kernelModule() cuda.ModuleSource {
	sub, err := fs.Sub(kernelFS, "kernels")
	if err != nil {
		panic(err) // the embedded folder always exists
	}
	return cuda.ModuleSource{Name: "gpu", Files: sub}
}

// kernels is the package's module loaded on one device.
type kernels struct {
	d *cuda.Device
	m *cuda.Module
}

func openKernels(d *cuda.Device) (*kernels, error) {
	m, err := d.LoadModule(kernelModule())
	if err != nil {
		return nil, err
	}
	return &kernels{d: d, m: m}, nil
}

func (k *kernels) launch(name string, grid int, args ...cuda.Arg) error {
	return k.m.Launch(name, grid, args...)
}

// gridFor sizes a grid-stride launch over n items.
func (k *kernels) gridFor(n int64) int { return k.d.GridFor(n) }

// softmaxRows writes p = softmax(s) over rows of length l (p may alias s).
func (k *kernels) softmaxRows(p, s uintptr, rows int64, l int) error {
	return k.launch("softmax_rows", k.gridFor(rows*32), cuda.PtrArg(p), cuda.PtrArg(s), cuda.Int64Arg(rows), cuda.IntArg(l))
}

// softmaxRowsBackward writes ds = scale*p*(dp - rowsum(dp*p)) (ds may alias dp).
func (k *kernels) softmaxRowsBackward(ds, dp, p uintptr, rows int64, l int, scale float32) error {
	return k.launch("softmax_rows_bwd", k.gridFor(rows*32), cuda.PtrArg(ds), cuda.PtrArg(dp), cuda.PtrArg(p),
		cuda.Int64Arg(rows), cuda.IntArg(l), cuda.F32Arg(scale))
}
