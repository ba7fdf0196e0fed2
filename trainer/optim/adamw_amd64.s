#include "textflag.h"

// AdamW's element update on 8 floats at a time (AVX2), the operations of
// hyper.adamw in its order and without fused multiply-adds, so every
// result has the same bits as the scalar code's:
//
//	g' = g*scale
//	m  = b1*m0 + (1-b1)*g'
//	v  = b2*v0 + ((1-b2)*g')*g'
//	w  = w0*d - (stepSize*m) / (sqrt(v)/sqrtC2 + eps)
//
// (a float32 square root is correctly rounded, as is float64's rounded to
// float32). The argument block is adamwBlock: eight pointers at 0..56, the
// count at 64, the constants at 72: scale, b1, 1-b1, b2, 1-b2, sqrtC2, eps,
// d, stepSize.

// CONSTS broadcasts the constants into Y0..Y8.
#define CONSTS \
	VBROADCASTSS 72(DI), Y0; \
	VBROADCASTSS 76(DI), Y1; \
	VBROADCASTSS 80(DI), Y2; \
	VBROADCASTSS 84(DI), Y3; \
	VBROADCASTSS 88(DI), Y4; \
	VBROADCASTSS 92(DI), Y5; \
	VBROADCASTSS 96(DI), Y6; \
	VBROADCASTSS 100(DI), Y7; \
	VBROADCASTSS 104(DI), Y8

// UPDATE8 takes g in Y9, w0 in Y10, m0 in Y11, v0 in Y12 and leaves w in
// Y10, m in Y11, v in Y12 (Y13, Y14 scratch).
#define UPDATE8 \
	VMULPS Y0, Y9, Y9; \
	VMULPS Y1, Y11, Y11; \
	VMULPS Y2, Y9, Y13; \
	VADDPS Y13, Y11, Y11; \
	VMULPS Y3, Y12, Y12; \
	VMULPS Y4, Y9, Y13; \
	VMULPS Y9, Y13, Y13; \
	VADDPS Y13, Y12, Y12; \
	VSQRTPS Y12, Y13; \
	VDIVPS Y5, Y13, Y13; \
	VADDPS Y6, Y13, Y13; \
	VMULPS Y7, Y10, Y10; \
	VMULPS Y8, Y11, Y14; \
	VDIVPS Y13, Y14, Y14; \
	VSUBPS Y14, Y10, Y10

// func adamwFromVec(b *adamwBlock)
TEXT ·adamwFromVec(SB), NOSPLIT, $0-8
	MOVQ b+0(FP), DI
	MOVQ 0(DI), AX
	MOVQ 8(DI), BX
	MOVQ 16(DI), CX
	MOVQ 24(DI), DX
	MOVQ 32(DI), R8
	MOVQ 40(DI), R9
	MOVQ 48(DI), R10
	MOVQ 56(DI), R11
	MOVQ 64(DI), R12
	SHLQ $2, R12
	CONSTS
	XORQ SI, SI

from_loop:
	CMPQ SI, R12
	JAE  from_done
	VMOVUPS (AX)(SI*1), Y9
	VMOVUPS (BX)(SI*1), Y10
	VMOVUPS (CX)(SI*1), Y11
	VMOVUPS (DX)(SI*1), Y12
	UPDATE8
	VMOVUPS Y10, (R8)(SI*1)
	VMOVUPS Y11, (R9)(SI*1)
	VMOVUPS Y12, (R10)(SI*1)
	TESTQ   R11, R11
	JZ      from_next
	VMOVUPS Y10, (R11)(SI*1)

from_next:
	ADDQ $32, SI
	JMP  from_loop

from_done:
	VZEROUPPER
	RET

// func adamwSpecVec(b *adamwBlock)
TEXT ·adamwSpecVec(SB), NOSPLIT, $0-8
	MOVQ b+0(FP), DI
	MOVQ 0(DI), AX
	MOVQ 8(DI), BX
	MOVQ 16(DI), CX
	MOVQ 24(DI), DX
	MOVQ 32(DI), R8
	MOVQ 40(DI), R9
	MOVQ 48(DI), R10
	MOVQ 56(DI), R11
	MOVQ 64(DI), R12
	SHLQ $2, R12
	CONSTS
	XORQ SI, SI

spec_loop:
	CMPQ SI, R12
	JAE  spec_done
	VMOVUPS (AX)(SI*1), Y9
	VMOVUPS (BX)(SI*1), Y10
	VMOVUPS (CX)(SI*1), Y11
	VMOVUPS (DX)(SI*1), Y12
	VMOVUPS Y10, (R8)(SI*1)
	VMOVUPS Y11, (R9)(SI*1)
	VMOVUPS Y12, (R10)(SI*1)
	UPDATE8
	VMOVUPS Y10, (BX)(SI*1)
	VMOVUPS Y11, (CX)(SI*1)
	VMOVUPS Y12, (DX)(SI*1)
	TESTQ   R11, R11
	JZ      spec_next
	VMOVUPS Y10, (R11)(SI*1)

spec_next:
	ADDQ $32, SI
	JMP  spec_loop

spec_done:
	VZEROUPPER
	RET
