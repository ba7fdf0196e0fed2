package cuda

import (
	"fmt"
	"unsafe"
)

// Card names GPU ordinal and its total memory without opening it (no
// context, no kernels): what a planner compares its estimates with.
func Card(ordinal int) (name string, total uint64, err error) {
	drv, err := loadDriver()
	if err != nil {
		return "", 0, err
	}
	var count int32
	if err := drv.call("cuDeviceGetCount", drv.cuDeviceGetCount, uintptr(unsafe.Pointer(&count))); err != nil {
		return "", 0, err
	}
	if ordinal < 0 || ordinal >= int(count) {
		return "", 0, fmt.Errorf("cuda: no GPU %d (the driver reports %d)", ordinal, count)
	}
	var dev int32
	if err := drv.call("cuDeviceGet", drv.cuDeviceGet, uintptr(unsafe.Pointer(&dev)), uintptr(ordinal)); err != nil {
		return "", 0, err
	}
	var buf [256]byte
	if err := drv.call("cuDeviceGetName", drv.cuDeviceGetName, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(dev)); err != nil {
		return "", 0, err
	}
	if err := drv.call("cuDeviceTotalMem_v2", drv.cuDeviceTotalMem, uintptr(unsafe.Pointer(&total)), uintptr(dev)); err != nil {
		return "", 0, err
	}
	return gostring(&buf[0]), total, nil
}
