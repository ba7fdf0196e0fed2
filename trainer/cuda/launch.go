package cuda

import (
	"fmt"
	"math"
	"os"
	"unsafe"
)

// Kernel argument encoders: each parameter travels in an 8-byte slot.
func argPtr(p uintptr) uint64 { return uint64(p) }
func argInt(v int) uint64     { return uint64(uint32(int32(v))) }
func argF32(v float32) uint64 { return uint64(math.Float32bits(v)) }
func argF64(v float64) uint64 { return math.Float64bits(v) }
func argT(t *Tensor) uint64   { return uint64(t.Ptr()) }
func argOpt(t *Tensor) uint64 { // a tensor that may be nil
	if t == nil {
		return 0
	}
	return uint64(t.Ptr())
}

// syncEveryLaunch makes every launch wait for its kernel, to pin an asynchronous fault
// on the kernel that caused it (PIPELINE_CUDA_SYNC=1; slow).
var syncEveryLaunch = os.Getenv("PIPELINE_CUDA_SYNC") == "1"

const blockSize = 256

// gridFor is the 1D grid for n elements with grid-stride loops: enough blocks to fill
// the GPU several times over, no more than needed.
func (d *Device) gridFor(n int) int {
	g := (n + blockSize - 1) / blockSize
	if lim := d.sms * 32; g > lim {
		g = lim
	}
	if g < 1 {
		g = 1
	}
	return g
}

// launch queues kernel name with grid×block threads; the context must be current.
func (d *Device) launch(name string, grid, block int, args ...uint64) error {
	f, err := d.mod.fn(name)
	if err != nil {
		return err
	}
	if len(args) > len(d.args.vals) {
		return fmt.Errorf("cuda: %s: %d kernel arguments, at most %d", name, len(args), len(d.args.vals))
	}
	d.launchM.Lock()
	for i, a := range args {
		d.args.vals[i] = a
		d.args.ptrs[i] = unsafe.Pointer(&d.args.vals[i])
	}
	err = d.drv.call("cuLaunchKernel "+name, d.drv.cuLaunchKernel, f,
		uintptr(grid), 1, 1, uintptr(block), 1, 1, 0, d.stream, uintptr(unsafe.Pointer(&d.args.ptrs[0])), 0)
	d.launchM.Unlock()
	if err != nil {
		return err
	}
	if syncEveryLaunch {
		if err := d.syncLocked(); err != nil {
			return fmt.Errorf("cuda: kernel %s: %w", name, err)
		}
	}
	return nil
}

// elementwise launches a grid-stride kernel over n elements.
func (d *Device) elementwise(name string, n int, args ...uint64) error {
	if n == 0 {
		return nil
	}
	return d.launch(name, d.gridFor(n), blockSize, args...)
}

// perRow launches one block per row (up to a cap, rows beyond it are strided).
func (d *Device) perRow(name string, rows int, args ...uint64) error {
	if rows == 0 {
		return nil
	}
	g := rows
	if lim := d.sms * 64; g > lim {
		g = lim
	}
	return d.launch(name, g, blockSize, args...)
}
