package cuda

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego"
)

// cuBLAS constants.
const (
	blasOpN            = 0
	blasOpT            = 1
	blasDefaultMath    = 0
	blasTF32TensorMath = 3
	blasWorkspaceBytes = 32 << 20
)

type blasAPI struct {
	path                                                 string
	create, destroy, setStream, setMathMode, setWorkspce uintptr
	sgemmStridedBatched, statusString                    uintptr
}

var blasLoad loadOnce[blasAPI]

func loadBLAS() (*blasAPI, error) {
	return blasLoad.get(func() (*blasAPI, error) {
		h, path, err := libCUBLAS.open()
		if err != nil {
			return nil, err
		}
		s := symbols{lib: path, handle: h}
		b := &blasAPI{
			path:                path,
			create:              s.get("cublasCreate_v2"),
			destroy:             s.get("cublasDestroy_v2"),
			setStream:           s.get("cublasSetStream_v2"),
			setMathMode:         s.get("cublasSetMathMode"),
			setWorkspce:         s.get("cublasSetWorkspace_v2"),
			sgemmStridedBatched: s.get("cublasSgemmStridedBatched"),
			statusString:        s.optional("cublasGetStatusString"),
		}
		if s.err != nil {
			return nil, s.err
		}
		return b, nil
	})
}

// BLASError is a failed cuBLAS call.
type BLASError struct {
	Call   string
	Status int
	Desc   string
}

func (e *BLASError) Error() string {
	return fmt.Sprintf("cuda: %s: cublasStatus %d: %s", e.Call, e.Status, e.Desc)
}

// call calls fn and turns a failure status into an error naming the call.
//
// uintptr(unsafe.Pointer(&x)) written in a call's argument list keeps x alive
// and in place until the call returns (go:uintptrescapes).
//
//go:uintptrescapes
func (b *blasAPI) call(name string, fn uintptr, args ...uintptr) error {
	r, _, _ := purego.SyscallN(fn, args...)
	if st := int(int32(r)); st != 0 {
		e := &BLASError{Call: name, Status: st}
		if b.statusString != 0 {
			var s *byte
			p, _, _ := purego.SyscallN(b.statusString, uintptr(st))
			// The string is static in libcublas; copy it without keeping a uintptr-derived pointer.
			s = bytePtr(p)
			e.Desc = gostring(s)
		}
		return e
	}
	return nil
}

// blasHandle is a cuBLAS handle bound to the device's stream and workspace.
type blasHandle struct {
	api  *blasAPI
	h    uintptr
	ws   *Buffer
	tf32 bool
}

func newBLAS(d *Device) (*blasHandle, error) {
	api, err := loadBLAS()
	if err != nil {
		return nil, err
	}
	bh := &blasHandle{api: api}
	if err := api.call("cublasCreate_v2", api.create, uintptr(unsafe.Pointer(&bh.h))); err != nil {
		return nil, err
	}
	if err := api.call("cublasSetStream_v2", api.setStream, bh.h, d.stream); err != nil {
		bh.destroy()
		return nil, err
	}
	// Our own workspace, so cuBLAS allocates nothing behind the caching allocator.
	if bh.ws, err = d.alloc.get(blasWorkspaceBytes); err != nil {
		bh.destroy()
		return nil, err
	}
	if err := api.call("cublasSetWorkspace_v2", api.setWorkspce, bh.h, bh.ws.Ptr, blasWorkspaceBytes); err != nil {
		bh.destroy()
		return nil, err
	}
	if err := bh.setTF32(d.opts.TF32); err != nil {
		bh.destroy()
		return nil, err
	}
	return bh, nil
}

func (b *blasHandle) setTF32(on bool) error {
	mode := uintptr(blasDefaultMath)
	if on {
		mode = blasTF32TensorMath
	}
	if err := b.api.call("cublasSetMathMode", b.api.setMathMode, b.h, mode); err != nil {
		return err
	}
	b.tf32 = on
	return nil
}

func (b *blasHandle) destroy() {
	if b.h != 0 {
		purego.SyscallN(b.api.destroy, b.h)
		b.h = 0
	}
	b.ws.Free()
}

// Gemm describes a batch of row-major matrix products
// C[i] = Alpha*op(A[i])*op(B[i]) + Beta*C[i], where op(A) is M×K, op(B) is K×N and
// C is M×N. Matrix i of X starts at X + i*StrideX elements (a stride of 0 reuses one
// matrix for the whole batch). LDA, LDB, LDC are row strides in elements; 0 means packed.
type Gemm struct {
	TransA, TransB            bool
	M, N, K                   int
	Alpha, Beta               float32
	A, B, C                   uintptr
	LDA, LDB, LDC             int
	StrideA, StrideB, StrideC int64
	Batch                     int
}

// packed fills in zero leading dimensions with the packed row strides.
func (g Gemm) packed() Gemm {
	if g.LDA == 0 {
		g.LDA = g.K
		if g.TransA {
			g.LDA = g.M
		}
	}
	if g.LDB == 0 {
		g.LDB = g.N
		if g.TransB {
			g.LDB = g.K
		}
	}
	if g.LDC == 0 {
		g.LDC = g.N
	}
	return g
}

// Gemm queues a strided batched SGEMM on the device's stream.
func (d *Device) Gemm(g Gemm) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.gemmLocked(g)
}

func (d *Device) gemmLocked(g Gemm) error {
	if g.M <= 0 || g.N <= 0 || g.Batch <= 0 {
		return nil
	}
	g = g.packed()
	// Row-major C = op(A)op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
	ta, tb := uintptr(blasOpN), uintptr(blasOpN)
	if g.TransB {
		ta = blasOpT
	}
	if g.TransA {
		tb = blasOpT
	}
	alpha, beta := g.Alpha, g.Beta
	b := d.blas
	return b.api.call("cublasSgemmStridedBatched", b.api.sgemmStridedBatched, b.h, ta, tb,
		uintptr(g.N), uintptr(g.M), uintptr(g.K), uintptr(unsafe.Pointer(&alpha)),
		g.B, uintptr(g.LDB), uintptr(g.StrideB),
		g.A, uintptr(g.LDA), uintptr(g.StrideA),
		uintptr(unsafe.Pointer(&beta)), g.C, uintptr(g.LDC), uintptr(g.StrideC), uintptr(g.Batch))
}
