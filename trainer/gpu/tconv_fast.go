package gpu

import (
	"os"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// The trainable temporal convolution on 16-bit operands (sd_t16.go) with
// fewer passes over memory, and weight gradients of trainable layers as
// split-K products.
//
// Forward: the float32 input is converted once into a 16-bit copy with
// R = C+8-ish rows per frame: rows C and C+1 are ones, the rest zero, and
// the rearranged weight W' (K x 3R) carries the bias's 16-bit high and low
// parts in the middle tap's columns C, C+1. The GEMMs of tconvGemm3 then
// add the bias (to 16 bits of it, float32 accumulation): no bias pass
// reads and writes the float32 output again.
//
// Backward: one pass over the float32 output gradient writes its 16-bit
// (N, K, P) copy (for dx, as before), a channel-major (K, N*P) copy (for
// dw) and per-row sums (for db). In the channel-major layout a tap's weight
// gradient dW_j = Σ_n dy[n] x[n+j-1]ᵀ is one product over all frames and
// positions together (shifting a frame is an offset of P along the row),
// split along that reduction into S strided-batched slices so the few
// output tiles of a (K x C) result still fill the card; a small kernel sums
// the slices into (K, C, 3). The per-frame partial products of
// tconvBackwardFilterOps (N x K x 3C floats: 491 MB at 1280 channels) are
// never written.

// tconvFast turns these paths on (PIPELINE_SD_TCONV_FAST=0: the earlier
// ones, for comparisons).
var tconvFast = os.Getenv("PIPELINE_SD_TCONV_FAST") != "0"

// tconvHalfDev is what the 16-bit paths need beyond tconvDev.
type tconvHalfDev interface {
	tconvDev
	// xAug writes y (n, r, p) of type o from float32 x (n, c, p): rows c ..
	// c+ones-1 of each frame ones, the rest zero.
	xAug(y, x uintptr, o tconvOps, n int64, c, r, p, ones int) error
	// xCMajor writes y (c, n, p) of type o from float32 x (n, c, p).
	xCMajor(y, x uintptr, o tconvOps, n int64, c, p int) error
	// dySplit writes, from float32 dy (n, c, p), yh (n, c, p) and yt (c,
	// n, p) of type o and the float32 row sums rs (n, c), each when non-zero.
	dySplit(yh, yt, rs, dy uintptr, o tconvOps, n int64, c, p int) error
	// wfwdHalf writes W' (k, 3, r) of type o from w (k, c, 3) and b (the
	// bias's high and low parts in the middle tap's columns c, c+1; b may be 0).
	wfwdHalf(out, w, b uintptr, o tconvOps, k, c, r int) error
	// wgradSum writes dw (k, c, 3) as the sums over s slices of part (3, s, k, c).
	wgradSum(dw, part uintptr, s, k, c int) error
	// colSums writes out (chunks, cols): the column sums of x (rows x cols)
	// over each chunk of rows.
	colSums(out, x uintptr, rows, cols int64, chunk int) error
}

func (o tconvOps) bf16() int {
	if cuda.DataType(o) == cuda.TypeBF16 {
		return 1
	}
	return 0
}

func (g gpuTconv) xAug(y, x uintptr, o tconvOps, n int64, c, r, p, ones int) error {
	return g.s.k.launch("tconv_x_aug", g.s.k.gridFor(n*int64(r*p/4)), cuda.PtrArg(y), cuda.PtrArg(x), cuda.IntArg(int(n)),
		cuda.IntArg(c), cuda.IntArg(r), cuda.IntArg(p), cuda.IntArg(ones), cuda.IntArg(o.bf16()))
}
func (g gpuTconv) xCMajor(y, x uintptr, o tconvOps, n int64, c, p int) error {
	return g.s.k.launch("tconv_x_cmajor", g.s.k.gridFor(n*int64(c*p/4)), cuda.PtrArg(y), cuda.PtrArg(x), cuda.IntArg(int(n)),
		cuda.IntArg(c), cuda.IntArg(p), cuda.IntArg(o.bf16()))
}
func (g gpuTconv) dySplit(yh, yt, rs, dy uintptr, o tconvOps, n int64, c, p int) error {
	return g.s.k.launch("tconv_dy_split", g.s.k.gridFor(n*int64(c)*32), cuda.PtrArg(yh), cuda.PtrArg(yt), cuda.PtrArg(rs), cuda.PtrArg(dy),
		cuda.Int64Arg(n), cuda.IntArg(c), cuda.IntArg(p), cuda.IntArg(o.bf16()))
}
func (g gpuTconv) wfwdHalf(out, w, b uintptr, o tconvOps, k, c, r int) error {
	return g.s.k.launch("tconv_wfwd_half", g.s.k.gridFor(int64(k*3*r)), cuda.PtrArg(out), cuda.PtrArg(w), cuda.PtrArg(b),
		cuda.IntArg(k), cuda.IntArg(c), cuda.IntArg(r), cuda.IntArg(o.bf16()))
}
func (g gpuTconv) wgradSum(dw, part uintptr, s, k, c int) error {
	return g.s.k.launch("tconv_wgrad_sum", g.s.k.gridFor(int64(k*c)), cuda.PtrArg(dw), cuda.PtrArg(part), cuda.IntArg(s), cuda.IntArg(k), cuda.IntArg(c))
}
func (g gpuTconv) colSums(out, x uintptr, rows, cols int64, chunk int) error {
	chunks := (rows + int64(chunk) - 1) / int64(chunk)
	return g.s.k.launch("col_sums", g.s.k.gridFor(chunks*cols), cuda.PtrArg(out), cuda.PtrArg(x), cuda.Int64Arg(rows), cuda.Int64Arg(cols), cuda.IntArg(chunk))
}

// tconvFastOK reports whether the 16-bit paths take shape ts: rows of
// 16-byte-aligned 16-bit values, and the conversion kernels' 32-bit index
// of groups of four values.
func tconvFastOK(ts nn.TemporalConvShape) bool {
	rows := tconvAugRows(max(ts.C, ts.K), true)
	return tconvFast && ts.P%8 == 0 && int64(ts.B*ts.T)*int64(rows)*int64(ts.P/4) < 1<<31
}

// halfSlots is the float32 slots n 16-bit values take.
func halfSlots(n int) int { return (n + 1) / 2 }

// tconvAugRows is the rows per frame of the forward's 16-bit input copy:
// C, plus the two bias rows when there is a bias, rounded up to 8.
func tconvAugRows(c int, bias bool) int {
	if bias {
		c += 2
	}
	return (c + 7) / 8 * 8
}

// tconvForwardHalf computes y = tconv(x, w) + b (b may be 0) on operands of
// type o from float32 x and w.
func tconvForwardHalf(d tconvHalfDev, o tconvOps, y, x, w, b uintptr, ts nn.TemporalConvShape) error {
	ones := 0
	if b != 0 {
		ones = 2
	}
	r := tconvAugRows(ts.C, b != 0)
	n := ts.B * ts.T
	xa, freeX, err := d.alloc(halfSlots(n * r * ts.P))
	if err != nil {
		return err
	}
	defer freeX()
	if err := d.xAug(xa, x, o, int64(n), ts.C, r, ts.P, ones); err != nil {
		return err
	}
	wa, freeW, err := d.alloc(halfSlots(ts.K * 3 * r))
	if err != nil {
		return err
	}
	defer freeW()
	if err := d.wfwdHalf(wa, w, b, o, ts.K, ts.C, r); err != nil {
		return err
	}
	return tconvGemm3(d, o, y, xa, wa, ts.K, r, ts.B, ts.T, ts.P)
}

// tconvHalfGrad is a temporal convolution's output gradient in the layouts
// its backward products read.
type tconvHalfGrad struct {
	o                tconvOps
	ts               nn.TemporalConvShape
	dyh, dyT, rowSum uintptr
	frees            []func()
}

// tconvSplitGrad converts float32 dy for the products asked for: the
// data gradient (dyh), the weight gradient (dyT) and the bias gradient
// (row sums).
func tconvSplitGrad(d tconvHalfDev, o tconvOps, dy uintptr, ts nn.TemporalConvShape, data, filter, bias bool) (*tconvHalfGrad, error) {
	g := &tconvHalfGrad{o: o, ts: ts}
	n := ts.B * ts.T
	get := func(p *uintptr, want bool, slots int) error {
		if !want {
			return nil
		}
		a, free, err := d.alloc(slots)
		if err != nil {
			return err
		}
		*p = a
		g.frees = append(g.frees, free)
		return nil
	}
	half := halfSlots(n * ts.K * ts.P)
	if err := get(&g.dyh, data, half); err != nil {
		g.free()
		return nil, err
	}
	if err := get(&g.dyT, filter, half); err != nil {
		g.free()
		return nil, err
	}
	if err := get(&g.rowSum, bias, n*ts.K); err != nil {
		g.free()
		return nil, err
	}
	if !data && !filter && !bias {
		return g, nil
	}
	if err := d.dySplit(g.dyh, g.dyT, g.rowSum, dy, o, int64(n), ts.K, ts.P); err != nil {
		g.free()
		return nil, err
	}
	return g, nil
}

func (g *tconvHalfGrad) free() {
	for _, f := range g.frees {
		f()
	}
	g.frees = nil
}

// data computes dx (float32) with wd the 16-bit backward-data weight
// (C x 3K, tconv_wdata's layout).
func (g *tconvHalfGrad) data(d tconvDev, dx, wd uintptr) error {
	ts := g.ts
	return tconvGemm3(d, g.o, dx, g.dyh, wd, ts.C, ts.K, ts.B, ts.T, ts.P)
}

// bias computes db from the row sums.
func (g *tconvHalfGrad) bias(d tconvHalfDev, db uintptr) error {
	n := g.ts.B * g.ts.T
	return d.colSums(db, g.rowSum, int64(n), int64(g.ts.K), n)
}

// filter computes dw (K, C, 3) from float32 x.
func (g *tconvHalfGrad) filter(d tconvHalfDev, dw, x uintptr) error {
	ts := g.ts
	n := ts.B * ts.T
	xT, freeX, err := d.alloc(halfSlots(n * ts.C * ts.P))
	if err != nil {
		return err
	}
	defer freeX()
	if err := d.xCMajor(xT, x, g.o, int64(n), ts.C, ts.P); err != nil {
		return err
	}
	return tconvFilterCMajor(d, g.o, dw, g.dyT, xT, ts)
}

// minSlice is the shortest reduction slice of a split-K product (a
// variable for the tests, which split small shapes).
var minSlice = 512

// tconvSlices is the split of a temporal convolution's weight-gradient
// reduction (T*P or (T-1)*P long): enough slices that the (K x C) output's
// tiles fill the card about twice, each slice a multiple of 8 long and at
// least 512.
func tconvSlices(k, c, p, t int) int {
	tiles := ((k + 127) / 128) * ((c + 127) / 128)
	s := 1
	for 2*s*tiles <= 300 && p%(2*s*8) == 0 && (t-1)*p/(2*s) >= minSlice {
		s *= 2
	}
	return s
}

// tconvFilterCMajor computes dw (K, C, 3) from channel-major 16-bit dyT
// (K, N*P) and xT (C, N*P).
func tconvFilterCMajor(d tconvHalfDev, o tconvOps, dw, dyT, xT uintptr, ts nn.TemporalConvShape) error {
	B, T, C, K, P := ts.B, ts.T, ts.C, ts.K, ts.P
	np := B * T * P
	s := tconvSlices(K, C, P, T)
	slots := B * s // slices per tap
	part, free, err := d.alloc(3 * slots * K * C)
	if err != nil {
		return err
	}
	defer free()
	for j := 0; j < 3; j++ {
		tap := off(part, j*slots*K*C)
		if T == 1 && j != 1 {
			if err := d.zeroBlock(tap, slots*K, C, C, 1, 0); err != nil {
				return err
			}
			continue
		}
		// output frames n with n+j-1 inside the clip
		l, dyOff, xOff := (T-1)*P, 0, 0
		switch j {
		case 0:
			dyOff = P
		case 1:
			l = T * P
		case 2:
			xOff = P
		}
		ch := l / s
		for b := 0; b < B; b++ {
			clip := b * T * P
			if err := d.gemm(o.gemm(cuda.Gemm{TransB: true, M: K, N: C, K: ch, Alpha: 1,
				A: o.at(dyT, clip+dyOff), LDA: np, StrideA: int64(ch),
				B: o.at(xT, clip+xOff), LDB: np, StrideB: int64(ch),
				C: off(tap, b*s*K*C), LDC: C, StrideC: int64(K * C), Batch: s})); err != nil {
				return err
			}
		}
	}
	return d.wgradSum(dw, part, slots, K, C)
}

// linearSlices is the split of a linear layer's weight-gradient reduction
// over its rows (as tconvSlices): 1 when rows do not divide evenly.
func linearSlices(rows, out, in int) int {
	tiles := ((out + 127) / 128) * ((in + 127) / 128)
	s := 1
	for 2*s*tiles <= 300 && rows%(2*s) == 0 && (rows/(2*s))%8 == 0 && rows/(2*s) >= minSlice {
		s *= 2
	}
	return s
}

// linearWeightGrad computes dw (out x in) = dyᵀ x over rows (dy rows x
// out, x rows x in, both of type o; dw float32) as a split-K product.
func linearWeightGrad(d tconvHalfDev, o tconvOps, dw, dy, x uintptr, rows, out, in int) error {
	s := linearSlices(rows, out, in)
	g := cuda.Gemm{TransA: true, M: out, N: in, K: rows / s, Alpha: 1, A: dy, LDA: out, B: x, LDB: in, C: dw, Batch: 1}
	if s == 1 {
		return d.gemm(o.gemm(g))
	}
	part, free, err := d.alloc(s * out * in)
	if err != nil {
		return err
	}
	defer free()
	g.C, g.Batch = part, s
	g.StrideA, g.StrideB, g.StrideC = int64(rows/s*out), int64(rows/s*in), int64(out*in)
	if err := d.gemm(o.gemm(g)); err != nil {
		return err
	}
	return d.colSums(dw, part, int64(s), int64(out*in), s)
}

// linearBiasGrad computes db (out) = the column sums of float32 dy (rows x
// out) in two coalesced passes.
func linearBiasGrad(d tconvHalfDev, db, dy uintptr, rows, out int) error {
	const chunk = 256
	if rows <= chunk {
		return d.colSums(db, dy, int64(rows), int64(out), rows)
	}
	chunks := (rows + chunk - 1) / chunk
	part, free, err := d.alloc(chunks * out)
	if err != nil {
		return err
	}
	defer free()
	if err := d.colSums(part, dy, int64(rows), int64(out), chunk); err != nil {
		return err
	}
	return d.colSums(db, part, int64(chunks), int64(out), chunks)
}
