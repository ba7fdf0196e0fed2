package gpu

import (
	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// The temporal convolution (nn.TemporalConvForward and its gradients)
// without a patch matrix. Frames are consecutive in (B*T, C, P) memory, so
// the three frames t-1, t, t+1 a tap-3 output reads form one contiguous
// (3C x P) matrix starting at frame t-1. With the weight rearranged to
// W' (K x 3C), W'[k][j*C+c] = w[k][c][j], every interior frame is
// y[n] = W' . X[n-1 : n+2]: one strided batched GEMM over frames 1..N-2
// (batch stride one frame). Its results for the first and last frame of a
// clip used a neighbouring clip's frame; two 2-tap GEMMs (batch stride one
// clip) then overwrite those frames. The backward pass is the same pattern
// with the transposed, tap-reversed weight for dx, and per-frame products
// dy[n] . X[n-1:n+2]^T summed over frames by a ones-vector GEMM for dw.
// No 3x patch matrix is written or read.

// tconvDev is what the direct temporal convolution needs from a device:
// GEMMs and a few small kernels on raw addresses (the GPU, or a CPU
// emulation in the tests).
type tconvDev interface {
	alloc(n int) (uintptr, func(), error)
	// gemm runs a product whose A and B are of g's operand type (float32,
	// or 16-bit in the half precisions), C float32.
	gemm(g cuda.GemmEx) error
	wfwd(out, w uintptr, k, c int) error
	wdata(out, w uintptr, k, c int) error
	wgrad(dw, dwp uintptr, k, c int) error
	zeroBlock(a uintptr, rows, cols, ld, batch int, bstride int64) error
	bias(y, b uintptr, n int64, c, p int) error
	// biasEmb adds b[c] + e[n][c] (e is (n, c)).
	biasEmb(y, b, e uintptr, n int64, c, p int) error
	ones(y uintptr, n int) error
}

// gpuTconv is tconvDev on the step's GPU.
type gpuTconv struct{ s *Step }

func (g gpuTconv) alloc(n int) (uintptr, func(), error) {
	t, err := g.s.dev.NewTensor(n)
	if err != nil {
		return 0, nil, err
	}
	return t.Ptr(), t.Free, nil
}
func (g gpuTconv) gemm(x cuda.GemmEx) error {
	if x.TypeA == cuda.TypeF32 && x.TypeB == cuda.TypeF32 {
		return g.s.dev.Gemm(x.Gemm)
	}
	return g.s.dev.GemmEx(x)
}
func (g gpuTconv) wfwd(out, w uintptr, k, c int) error {
	return g.s.k.launch("tconv_wfwd", g.s.k.gridFor(int64(k*3*c)), cuda.PtrArg(out), cuda.PtrArg(w), cuda.IntArg(k), cuda.IntArg(c))
}
func (g gpuTconv) wdata(out, w uintptr, k, c int) error {
	return g.s.k.launch("tconv_wdata", g.s.k.gridFor(int64(k*3*c)), cuda.PtrArg(out), cuda.PtrArg(w), cuda.IntArg(k), cuda.IntArg(c))
}
func (g gpuTconv) wgrad(dw, dwp uintptr, k, c int) error {
	return g.s.k.launch("tconv_wgrad", g.s.k.gridFor(int64(k*3*c)), cuda.PtrArg(dw), cuda.PtrArg(dwp), cuda.IntArg(k), cuda.IntArg(c))
}
func (g gpuTconv) zeroBlock(a uintptr, rows, cols, ld, batch int, bstride int64) error {
	return g.s.k.launch("zero_block", g.s.k.gridFor(int64(batch*rows*cols)), cuda.PtrArg(a), cuda.IntArg(rows), cuda.IntArg(cols), cuda.IntArg(ld), cuda.IntArg(batch), cuda.Int64Arg(bstride))
}
func (g gpuTconv) bias(y, b uintptr, n int64, c, p int) error {
	return g.s.k.launch("bias_ncp", g.s.k.gridFor(n*int64(c*p)), cuda.PtrArg(y), cuda.PtrArg(b), cuda.Int64Arg(n), cuda.IntArg(c), cuda.IntArg(p))
}
func (g gpuTconv) biasEmb(y, b, e uintptr, n int64, c, p int) error {
	return g.s.k.launch("bias_emb_ncp", g.s.k.gridFor(n*int64(c*p)), cuda.PtrArg(y), cuda.PtrArg(b), cuda.PtrArg(e), cuda.Int64Arg(n), cuda.IntArg(c), cuda.IntArg(p))
}
func (g gpuTconv) ones(y uintptr, n int) error {
	return g.s.k.launch("fill_ones", g.s.k.gridFor(int64(n)), cuda.PtrArg(y), cuda.IntArg(n))
}

func off(p uintptr, floats int) uintptr { return p + uintptr(floats)*f32 }

// tconvOps is the operand type of a temporal convolution's products: the
// weight and activation (or gradient) operands; their results are float32
// either way (sd_t16.go: the 16-bit operands of the half precisions).
type tconvOps cuda.DataType

const tconvF32 = tconvOps(cuda.TypeF32)

// at is the address of element i of an operand of type o.
func (o tconvOps) at(p uintptr, i int) uintptr {
	if cuda.DataType(o) == cuda.TypeF32 {
		return off(p, i)
	}
	return p + uintptr(i)*bf16Size
}

// gemm is g with A and B of type o, C float32.
func (o tconvOps) gemm(g cuda.Gemm) cuda.GemmEx {
	return cuda.GemmEx{Gemm: g, TypeA: cuda.DataType(o), TypeB: cuda.DataType(o), TypeC: cuda.TypeF32}
}

// tconvGemm3 computes out[n] = A3 . in[n-1:n+2] over the frames of B clips
// of T frames, where A3 is (M x 3R) (ld 3R), in has R rows per frame and
// out M rows, both P columns; the first and last frame of each clip use the
// two-tap sub-blocks A3[:, R:3R] and A3[:, 0:2R]. A3 and in are of type o,
// out float32.
func tconvGemm3(d tconvDev, o tconvOps, out, in, a3 uintptr, M, R, B, T, P int) error {
	N := B * T
	ldA := 3 * R
	if T == 1 {
		return d.gemm(o.gemm(cuda.Gemm{M: M, N: P, K: R, Alpha: 1, A: o.at(a3, R), LDA: ldA,
			B: in, StrideB: int64(R * P), C: out, StrideC: int64(M * P), Batch: N}))
	}
	if N > 2 {
		if err := d.gemm(o.gemm(cuda.Gemm{M: M, N: P, K: 3 * R, Alpha: 1, A: a3, LDA: ldA,
			B: in, StrideB: int64(R * P), C: off(out, M*P), StrideC: int64(M * P), Batch: N - 2})); err != nil {
			return err
		}
	}
	// first frame of each clip: taps 1, 2 over frames t, t+1
	if err := d.gemm(o.gemm(cuda.Gemm{M: M, N: P, K: 2 * R, Alpha: 1, A: o.at(a3, R), LDA: ldA,
		B: in, StrideB: int64(T * R * P), C: out, StrideC: int64(T * M * P), Batch: B})); err != nil {
		return err
	}
	// last frame of each clip: taps 0, 1 over frames t-1, t
	return d.gemm(o.gemm(cuda.Gemm{M: M, N: P, K: 2 * R, Alpha: 1, A: a3, LDA: ldA,
		B: o.at(in, (T-2)*R*P), StrideB: int64(T * R * P), C: off(out, (T-1)*M*P), StrideC: int64(T * M * P), Batch: B}))
}

// tconvForward computes y = tconv(x, w) + b (no bias when b is 0).
func tconvForward(d tconvDev, y, x, w, b uintptr, ts nn.TemporalConvShape) error {
	wf, free, err := d.alloc(ts.K * 3 * ts.C)
	if err != nil {
		return err
	}
	defer free()
	if err := d.wfwd(wf, w, ts.K, ts.C); err != nil {
		return err
	}
	if err := tconvGemm3(d, tconvF32, y, x, wf, ts.K, ts.C, ts.B, ts.T, ts.P); err != nil {
		return err
	}
	if b == 0 {
		return nil
	}
	return d.bias(y, b, int64(ts.B*ts.T), ts.K, ts.P)
}

// tconvBackwardData computes dx from dy and w.
func tconvBackwardData(d tconvDev, dx, dy, w uintptr, ts nn.TemporalConvShape) error {
	wd, free, err := d.alloc(ts.C * 3 * ts.K)
	if err != nil {
		return err
	}
	defer free()
	if err := d.wdata(wd, w, ts.K, ts.C); err != nil {
		return err
	}
	return tconvGemm3(d, tconvF32, dx, dy, wd, ts.C, ts.K, ts.B, ts.T, ts.P)
}

// tconvBackwardFilter computes dw (the bias gradient is a channel sum of dy).
func tconvBackwardFilter(d tconvDev, dw, dy, x uintptr, ts nn.TemporalConvShape) error {
	return tconvBackwardFilterOps(d, tconvF32, dw, dy, x, ts)
}

// tconvBackwardFilterOps is tconvBackwardFilter with dy and x of type o
// (dw and the per-frame products float32).
func tconvBackwardFilterOps(d tconvDev, o tconvOps, dw, dy, x uintptr, ts nn.TemporalConvShape) error {
	B, T, C, K, P := ts.B, ts.T, ts.C, ts.K, ts.P
	N := B * T
	blk := K * 3 * C
	part, freePart, err := d.alloc(N * blk)
	if err != nil {
		return err
	}
	defer freePart()
	// part[n] (K x 3C) = dy[n] . X[n-1:n+2]^T
	frame := func(M, R int, cols, ldc int, a, b, c uintptr, sa, sb, sc int64, batch int) error {
		return d.gemm(o.gemm(cuda.Gemm{TransB: true, M: M, N: cols, K: P, Alpha: 1, A: a, LDA: P, StrideA: sa,
			B: b, LDB: P, StrideB: sb, C: c, LDC: ldc, StrideC: sc, Batch: batch}))
	}
	if T == 1 {
		if err := d.zeroBlock(part, N*K, 3*C, 3*C, 1, 0); err != nil {
			return err
		}
		if err := frame(K, C, C, 3*C, dy, x, off(part, C), int64(K*P), int64(C*P), int64(blk), N); err != nil {
			return err
		}
	} else {
		if N > 2 {
			if err := frame(K, C, 3*C, 3*C, o.at(dy, K*P), x, off(part, blk), int64(K*P), int64(C*P), int64(blk), N-2); err != nil {
				return err
			}
		}
		// first frames: [0 | dy . x[t:t+2]^T]
		if err := frame(K, C, 2*C, 3*C, dy, x, off(part, C), int64(T*K*P), int64(T*C*P), int64(T*blk), B); err != nil {
			return err
		}
		if err := d.zeroBlock(part, K, C, 3*C, B, int64(T*blk)); err != nil {
			return err
		}
		// last frames: [dy . x[t-1:t+1]^T | 0]
		last := (T - 1) * blk
		if err := frame(K, C, 2*C, 3*C, o.at(dy, (T-1)*K*P), o.at(x, (T-2)*C*P), off(part, last), int64(T*K*P), int64(T*C*P), int64(T*blk), B); err != nil {
			return err
		}
		if err := d.zeroBlock(off(part, last+2*C), K, C, 3*C, B, int64(T*blk)); err != nil {
			return err
		}
	}
	// dW' = sum over frames: ones (1 x N) . part (N x K*3C)
	ones, freeOnes, err := d.alloc(N)
	if err != nil {
		return err
	}
	defer freeOnes()
	if err := d.ones(ones, N); err != nil {
		return err
	}
	dwp, freeDwp, err := d.alloc(blk)
	if err != nil {
		return err
	}
	defer freeDwp()
	if err := d.gemm(tconvF32.gemm(cuda.Gemm{M: 1, N: blk, K: N, Alpha: 1, A: ones, B: part, C: dwp, Batch: 1})); err != nil {
		return err
	}
	return d.wgrad(dw, dwp, K, C)
}

func tptr(t *cuda.Tensor) uintptr {
	if t == nil {
		return 0
	}
	return t.Ptr()
}
