package cuda

import (
	"fmt"
	"math"
	"os"
	"unsafe"
)

// Arg is one kernel parameter in an 8-byte slot (4-byte parameters in its low half,
// little-endian).
type Arg uint64

// Kernel argument encoders.
func PtrArg(p uintptr) Arg { return Arg(p) }
func IntArg(v int) Arg     { return Arg(uint32(int32(v))) }
func Int64Arg(v int64) Arg { return Arg(v) }
func F32Arg(v float32) Arg { return Arg(math.Float32bits(v)) }
func F64Arg(v float64) Arg { return Arg(math.Float64bits(v)) }
func TensorArg(t *Tensor) Arg { // a nil tensor is a null pointer
	if t == nil {
		return 0
	}
	return Arg(t.Ptr())
}

// SyncEnv names the switch that makes every launch wait for its kernel, to pin an
// asynchronous fault on the kernel that caused it (PIPELINE_CUDA_SYNC=1; slow).
const SyncEnv = "PIPELINE_CUDA_SYNC"

var syncEveryLaunch = os.Getenv(SyncEnv) == "1"

// BlockSize is the thread count of every launch.
const BlockSize = 256

// GridFor is the 1D grid for n elements with grid-stride loops: enough blocks to fill
// the GPU several times over, no more than needed.
func (d *Device) GridFor(n int64) int {
	g := (n + BlockSize - 1) / BlockSize
	if lim := int64(d.sms * 32); g > lim {
		g = lim
	}
	return int(max(1, g))
}

// RowGrid is the grid of a kernel that gives each of rows rows one block (rows beyond
// the cap are strided).
func (d *Device) RowGrid(rows int) int { return max(1, min(rows, d.sms*64)) }

// Launch queues kernel name with grid blocks of BlockSize threads on the device's
// stream, after all work queued there before.
func (m *Module) Launch(name string, grid int, args ...Arg) error {
	d := m.d
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.launchIn(m, name, grid, BlockSize, args)
}

// launch queues one of the package's own kernels; the context must be current.
func (d *Device) launch(name string, grid, block int, args ...Arg) error {
	return d.launchIn(d.mod, name, grid, block, args)
}

// launchIn is the one launch path of every module; the context must be current.
func (d *Device) launchIn(m *Module, name string, grid, block int, args []Arg) error {
	f, err := m.fn(name)
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
func (d *Device) elementwise(name string, n int, args ...Arg) error {
	if n == 0 {
		return nil
	}
	return d.launch(name, d.GridFor(int64(n)), BlockSize, args...)
}

// perRow launches one block per row (up to a cap, rows beyond it are strided).
func (d *Device) perRow(name string, rows int, args ...Arg) error {
	if rows == 0 {
		return nil
	}
	return d.launch(name, d.RowGrid(rows), BlockSize, args...)
}
