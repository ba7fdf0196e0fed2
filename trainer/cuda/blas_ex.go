package cuda

import "unsafe"

// DataType is a cuBLAS operand type (cudaDataType).
type DataType int

// Operand types of GemmEx.
const (
	TypeF32  DataType = 0  // CUDA_R_32F
	TypeF16  DataType = 2  // CUDA_R_16F
	TypeBF16 DataType = 14 // CUDA_R_16BF
)

const (
	blasCompute32F  = 68 // CUBLAS_COMPUTE_32F: float32 accumulation
	blasGemmDefault = -1 // CUBLAS_GEMM_DEFAULT
)

// GemmEx is a Gemm whose operands may be half precision (float16 or
// bfloat16, packed two per float32 slot of a Tensor); the products
// accumulate in float32 and Alpha, Beta are float32. Strides and leading
// dimensions count elements of each operand's own type.
type GemmEx struct {
	Gemm
	TypeA, TypeB, TypeC DataType
}

var gemmExLoad loadOnce[uintptr]

func loadGemmEx() (*uintptr, error) {
	return gemmExLoad.get(func() (*uintptr, error) {
		h, path, err := libCUBLAS.open()
		if err != nil {
			return nil, err
		}
		s := symbols{lib: path, handle: h}
		p := s.get("cublasGemmStridedBatchedEx")
		if s.err != nil {
			return nil, s.err
		}
		return &p, nil
	})
}

// GemmEx queues a strided batched mixed-precision GEMM
// (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F) on the device's stream.
func (d *Device) GemmEx(g GemmEx) error {
	fn, err := loadGemmEx()
	if err != nil {
		return err
	}
	if g.M <= 0 || g.N <= 0 || g.Batch <= 0 {
		return nil
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	p := g.Gemm.packed()
	// Row-major C = op(A)op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
	ta, tb := uintptr(blasOpN), uintptr(blasOpN)
	if p.TransB {
		ta = blasOpT
	}
	if p.TransA {
		tb = blasOpT
	}
	alpha, beta := p.Alpha, p.Beta
	b := d.blas
	algo := int32(blasGemmDefault)
	return b.api.call("cublasGemmStridedBatchedEx", *fn, b.h, ta, tb,
		uintptr(p.N), uintptr(p.M), uintptr(p.K), uintptr(unsafe.Pointer(&alpha)),
		p.B, uintptr(g.TypeB), uintptr(p.LDB), uintptr(p.StrideB),
		p.A, uintptr(g.TypeA), uintptr(p.LDA), uintptr(p.StrideA),
		uintptr(unsafe.Pointer(&beta)), p.C, uintptr(g.TypeC), uintptr(p.LDC), uintptr(p.StrideC),
		uintptr(p.Batch), blasCompute32F, uintptr(uint32(algo)))
}
