package cuda

import (
	"errors"
	"fmt"
	"unsafe"
)

// KernelResources is what one compiled kernel takes: registers per
// thread, local memory per thread (register spills and stack arrays) and
// static shared memory per block, as the driver reports them.
type KernelResources struct {
	Registers, LocalBytes, SharedBytes int
}

// CUfunction_attribute values (cuda.h).
const (
	funcAttrSharedSizeBytes = 1
	funcAttrLocalSizeBytes  = 3
	funcAttrNumRegs         = 4
)

// Resources reports the resources of kernel name (for benchmarks and
// tests that check a kernel does not spill).
func (m *Module) Resources(name string) (KernelResources, error) {
	d := m.d
	if d.drv.cuFuncGetAttribute == 0 {
		return KernelResources{}, errors.New("cuda: the driver has no cuFuncGetAttribute")
	}
	if err := d.enter(); err != nil {
		return KernelResources{}, err
	}
	defer d.leave()
	f, err := m.fn(name)
	if err != nil {
		return KernelResources{}, err
	}
	var r KernelResources
	for _, a := range []struct {
		attr int
		dst  *int
	}{{funcAttrNumRegs, &r.Registers}, {funcAttrLocalSizeBytes, &r.LocalBytes}, {funcAttrSharedSizeBytes, &r.SharedBytes}} {
		var v int32
		if err := d.drv.call("cuFuncGetAttribute", d.drv.cuFuncGetAttribute, uintptr(unsafe.Pointer(&v)), uintptr(a.attr), f); err != nil {
			return KernelResources{}, fmt.Errorf("cuda: kernel %s: %w", name, err)
		}
		*a.dst = int(v)
	}
	return r, nil
}
