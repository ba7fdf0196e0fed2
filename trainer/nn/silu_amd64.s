#include "textflag.h"

// SiLU on 8 floats at a time (AVX2/FMA): sigmoid(x) = 1/(1+e^-x), e^-x as
// expf does it (argument clamped to [-87, 88], n rounded with the 1.5*2^23
// constant, a degree-6 polynomial of r, 2^n in the exponent bits).
// c points to siluConsts: lo, hi, log2e, magic, ln2hi, ln2lo, one, bias
// (magic's bits - 127, an int32), then the polynomial's 1/720 .. 1/2.

// SIGMOID8 leaves sigmoid(Y0) in Y1 (Y2..Y7 scratch; constants in Y8..Y15).
#define SIGMOID8 \
	VSUBPS       Y0, Y7, Y1; \
	VMAXPS       Y15, Y1, Y1; \
	VMINPS       Y14, Y1, Y1; \
	VMOVAPS      Y12, Y2; \
	VFMADD231PS  Y13, Y1, Y2; \
	VSUBPS       Y12, Y2, Y3; \
	VFNMADD231PS Y11, Y3, Y1; \
	VFNMADD231PS Y10, Y3, Y1; \
	VBROADCASTSS 32(DX), Y4; \
	VBROADCASTSS 36(DX), Y5; \
	VFMADD213PS  Y5, Y1, Y4; \
	VBROADCASTSS 40(DX), Y5; \
	VFMADD213PS  Y5, Y1, Y4; \
	VBROADCASTSS 44(DX), Y5; \
	VFMADD213PS  Y5, Y1, Y4; \
	VBROADCASTSS 48(DX), Y5; \
	VFMADD213PS  Y5, Y1, Y4; \
	VFMADD213PS  Y9, Y1, Y4; \
	VFMADD213PS  Y9, Y1, Y4; \
	VPSUBD       Y8, Y2, Y2; \
	VPSLLD       $23, Y2, Y2; \
	VMULPS       Y2, Y4, Y4; \
	VADDPS       Y9, Y4, Y4; \
	VDIVPS       Y4, Y9, Y1

#define LOADCONSTS \
	VBROADCASTSS 0(DX), Y15; \
	VBROADCASTSS 4(DX), Y14; \
	VBROADCASTSS 8(DX), Y13; \
	VBROADCASTSS 12(DX), Y12; \
	VBROADCASTSS 16(DX), Y11; \
	VBROADCASTSS 20(DX), Y10; \
	VBROADCASTSS 24(DX), Y9; \
	VBROADCASTSS 28(DX), Y8; \
	VXORPS       Y7, Y7, Y7

// func siluForward8(n int, y, x, c *float32)
// y[i] = x[i] * sigmoid(x[i]) for i < n, n a multiple of 8.
TEXT ·siluForward8(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ y+8(FP), DI
	MOVQ x+16(FP), SI
	MOVQ c+24(FP), DX
	LOADCONSTS

floop:
	CMPQ    CX, $8
	JLT     fdone
	VMOVUPS (SI), Y0
	SIGMOID8
	VMULPS  Y1, Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     floop

fdone:
	VZEROUPPER
	RET

// func siluBackward8(n int, dx, dy, x, c *float32)
// dx[i] = dy[i] * s * (1 + x[i]*(1-s)), s = sigmoid(x[i]), for i < n, n a
// multiple of 8.
TEXT ·siluBackward8(SB), NOSPLIT, $0-40
	MOVQ n+0(FP), CX
	MOVQ dx+8(FP), DI
	MOVQ dy+16(FP), BX
	MOVQ x+24(FP), SI
	MOVQ c+32(FP), DX
	LOADCONSTS

bloop:
	CMPQ    CX, $8
	JLT     bdone
	VMOVUPS (SI), Y0
	SIGMOID8
	VSUBPS  Y1, Y9, Y2
	VFMADD213PS Y9, Y0, Y2
	VMULPS  Y1, Y2, Y2
	VMULPS  (BX), Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	ADDQ    $32, BX
	SUBQ    $8, CX
	JMP     bloop

bdone:
	VZEROUPPER
	RET
