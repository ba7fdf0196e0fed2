package cuda

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Result is a CUDA driver API status code (CUresult).
type Result int

// Driver status codes the package checks for by value.
const (
	resultSuccess          Result = 0
	resultOutOfMemory      Result = 2
	resultNotInitialized   Result = 3
	resultNoDevice         Result = 100
	resultInvalidContext   Result = 201
	resultNotReady         Result = 600
	resultInvalidValue     Result = 1
	resultInsufficientDrv  Result = 35
	resultSystemDrvMismatc Result = 803
)

// DriverError is a failed driver API call.
type DriverError struct {
	Call string
	Code Result
	Name string // e.g. CUDA_ERROR_OUT_OF_MEMORY
	Desc string
}

func (e *DriverError) Error() string {
	return fmt.Sprintf("cuda: %s: %s (%d): %s", e.Call, e.Name, int(e.Code), e.Desc)
}

// driverAPI holds the driver entry points we use.
type driverAPI struct {
	path string

	cuInit, cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName uintptr
	cuDeviceGetAttribute, cuDeviceTotalMem, cuDevicePrimaryCtxRetain           uintptr
	cuDevicePrimaryCtxRelease, cuCtxSetCurrent                                 uintptr
	cuMemAlloc, cuMemFree, cuMemGetInfo, cuMemHostAlloc, cuMemFreeHost         uintptr
	cuMemcpyHtoDAsync, cuMemcpyDtoHAsync, cuMemcpyDtoDAsync, cuMemsetD32Async  uintptr
	cuStreamCreate, cuStreamDestroy, cuStreamSynchronize, cuStreamWaitEvent    uintptr
	cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime       uintptr
	cuEventDestroy, cuModuleLoadData, cuModuleGetFunction, cuModuleUnload      uintptr
	cuLaunchKernel, cuFuncSetAttribute, cuGetErrorName, cuGetErrorString       uintptr
	cuFuncGetAttribute                                                         uintptr
}

var driverLoad loadOnce[driverAPI]

// loadDriver dlopens libcuda and resolves its symbols once per process.
func loadDriver() (*driverAPI, error) {
	return driverLoad.get(func() (*driverAPI, error) {
		h, path, err := libCUDA.open()
		if err != nil {
			return nil, err
		}
		s := symbols{lib: path, handle: h}
		d := &driverAPI{
			path:                      path,
			cuInit:                    s.get("cuInit"),
			cuDriverGetVersion:        s.get("cuDriverGetVersion"),
			cuDeviceGetCount:          s.get("cuDeviceGetCount"),
			cuDeviceGet:               s.get("cuDeviceGet"),
			cuDeviceGetName:           s.get("cuDeviceGetName"),
			cuDeviceGetAttribute:      s.get("cuDeviceGetAttribute"),
			cuDeviceTotalMem:          s.get("cuDeviceTotalMem_v2"),
			cuDevicePrimaryCtxRetain:  s.get("cuDevicePrimaryCtxRetain"),
			cuDevicePrimaryCtxRelease: s.get("cuDevicePrimaryCtxRelease_v2"),
			cuCtxSetCurrent:           s.get("cuCtxSetCurrent"),
			cuMemAlloc:                s.get("cuMemAlloc_v2"),
			cuMemFree:                 s.get("cuMemFree_v2"),
			cuMemGetInfo:              s.get("cuMemGetInfo_v2"),
			cuMemHostAlloc:            s.get("cuMemHostAlloc"),
			cuMemFreeHost:             s.get("cuMemFreeHost"),
			cuMemcpyHtoDAsync:         s.get("cuMemcpyHtoDAsync_v2"),
			cuMemcpyDtoHAsync:         s.get("cuMemcpyDtoHAsync_v2"),
			cuMemcpyDtoDAsync:         s.get("cuMemcpyDtoDAsync_v2"),
			cuMemsetD32Async:          s.get("cuMemsetD32Async"),
			cuStreamCreate:            s.get("cuStreamCreate"),
			cuStreamDestroy:           s.get("cuStreamDestroy_v2"),
			cuStreamSynchronize:       s.get("cuStreamSynchronize"),
			cuStreamWaitEvent:         s.get("cuStreamWaitEvent"),
			cuEventCreate:             s.get("cuEventCreate"),
			cuEventRecord:             s.get("cuEventRecord"),
			cuEventSynchronize:        s.get("cuEventSynchronize"),
			cuEventDestroy:            s.get("cuEventDestroy_v2"),
			cuModuleLoadData:          s.get("cuModuleLoadData"),
			cuModuleGetFunction:       s.get("cuModuleGetFunction"),
			cuModuleUnload:            s.get("cuModuleUnload"),
			cuLaunchKernel:            s.get("cuLaunchKernel"),
			cuFuncSetAttribute:        s.optional("cuFuncSetAttribute"),
			cuFuncGetAttribute:        s.optional("cuFuncGetAttribute"),
			cuGetErrorName:            s.get("cuGetErrorName"),
			cuGetErrorString:          s.get("cuGetErrorString"),
		}
		// CUDA 12.8 added cuEventElapsedTime_v2; older drivers only have the plain one.
		d.cuEventElapsedTime = s.optional("cuEventElapsedTime_v2")
		if d.cuEventElapsedTime == 0 {
			d.cuEventElapsedTime = s.get("cuEventElapsedTime")
		}
		if s.err != nil {
			return nil, s.err
		}
		if r := d.raw(d.cuInit, 0); r != resultSuccess {
			return nil, d.err("cuInit", r)
		}
		return d, nil
	})
}

// raw calls a driver function and returns its status.
//
// uintptr(unsafe.Pointer(&x)) written in a call's argument list keeps x alive
// and in place until the call returns (go:uintptrescapes).
//
//go:uintptrescapes
func (d *driverAPI) raw(fn uintptr, args ...uintptr) Result {
	r, _, _ := purego.SyscallN(fn, args...)
	return Result(int32(r))
}

// call calls a driver function and turns a failure into a *DriverError naming call.
//
// uintptr(unsafe.Pointer(&x)) written in a call's argument list keeps x alive
// and in place until the call returns (go:uintptrescapes).
//
//go:uintptrescapes
func (d *driverAPI) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if res := Result(int32(r)); res != resultSuccess {
		return d.err(name, res)
	}
	return nil
}

// err builds a *DriverError with the driver's own name and description for r.
func (d *driverAPI) err(call string, r Result) error {
	e := &DriverError{Call: call, Code: r, Name: fmt.Sprintf("CUresult %d", int(r))}
	var name, desc *byte
	if d.cuGetErrorName != 0 && d.raw(d.cuGetErrorName, uintptr(r), uintptr(unsafe.Pointer(&name))) == resultSuccess {
		e.Name = gostring(name)
	}
	if d.cuGetErrorString != 0 && d.raw(d.cuGetErrorString, uintptr(r), uintptr(unsafe.Pointer(&desc))) == resultSuccess {
		e.Desc = gostring(desc)
	}
	return e
}
