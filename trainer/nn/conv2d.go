package nn

import (
	"fmt"
	"sync"
)

// Conv2DShape describes a 2D convolution over N frames in NCHW layout with a
// (K, C, KH, KW) weight and an optional (K) bias.
type Conv2DShape struct {
	N, C, H, W int // input
	K          int // output channels
	KH, KW     int // kernel size
	Stride     int // same in both directions, >= 1
	Pad        int // zero padding on every side
}

// OutH is the output height.
func (s Conv2DShape) OutH() int { return (s.H+2*s.Pad-s.KH)/s.Stride + 1 }

// OutW is the output width.
func (s Conv2DShape) OutW() int { return (s.W+2*s.Pad-s.KW)/s.Stride + 1 }

// InLen, OutLen and WeightLen are the flat lengths of x, y and w.
func (s Conv2DShape) InLen() int     { return s.N * s.C * s.H * s.W }
func (s Conv2DShape) OutLen() int    { return s.N * s.K * s.OutH() * s.OutW() }
func (s Conv2DShape) WeightLen() int { return s.K * s.C * s.KH * s.KW }

// FLOPs is the multiply-add count of the forward pass times two.
func (s Conv2DShape) FLOPs() int64 {
	return 2 * int64(s.N) * int64(s.K) * int64(s.OutH()*s.OutW()) * int64(s.C*s.KH*s.KW)
}

// Validate reports an impossible shape.
func (s Conv2DShape) Validate() error {
	if s.N <= 0 || s.C <= 0 || s.H <= 0 || s.W <= 0 || s.K <= 0 || s.KH <= 0 || s.KW <= 0 || s.Stride <= 0 || s.Pad < 0 {
		return fmt.Errorf("nn: conv2d: bad shape %+v", s)
	}
	if s.OutH() <= 0 || s.OutW() <= 0 {
		return fmt.Errorf("nn: conv2d: kernel larger than padded input in %+v", s)
	}
	return nil
}

// sameSize reports a stride-1 conv with an odd square kernel padded to keep
// the frame's size (3x3, pad 1), not pointwise.
func (s Conv2DShape) sameSize() bool {
	return s.Stride == 1 && s.KH == s.KW && s.KH%2 == 1 && s.KH > 1 && s.Pad == s.KH/2
}

// flippedKernel returns w (K, C, KH, KW) as the (C, K, KH, KW) kernel
// rotated by 180 degrees.
func flippedKernel(w []float32, s Conv2DShape) []float32 {
	kk := s.KH * s.KW
	out := make([]float32, len(w))
	for k := 0; k < s.K; k++ {
		for c := 0; c < s.C; c++ {
			src := w[(k*s.C+c)*kk : (k*s.C+c+1)*kk]
			dst := out[(c*s.K+k)*kk : (c*s.K+k+1)*kk]
			for i, v := range src {
				dst[kk-1-i] = v
			}
		}
	}
	return out
}

// pointwise reports a 1x1, stride-1, unpadded conv whose im2col is x itself.
func (s Conv2DShape) pointwise() bool {
	return s.KH == 1 && s.KW == 1 && s.Stride == 1 && s.Pad == 0
}

// span returns the output columns [lo, hi) whose input column
// ox*stride - pad + kj falls inside [0, w).
func span(ow, w, stride, pad, kj int) (lo, hi int) {
	// ox*stride >= pad - kj  and  ox*stride <= w - 1 + pad - kj
	lo = 0
	if d := pad - kj; d > 0 {
		lo = (d + stride - 1) / stride
	}
	hi = ow
	if lim := w - 1 + pad - kj; lim < 0 {
		hi = 0
	} else if h := lim/stride + 1; h < hi {
		hi = h
	}
	if lo > hi {
		lo = hi
	}
	return lo, hi
}

// im2col writes the (C*KH*KW, OH*OW) patch matrix of one frame.
func im2col(col, x []float32, s Conv2DShape) {
	oh, ow := s.OutH(), s.OutW()
	i := 0
	for c := 0; c < s.C; c++ {
		xc := x[c*s.H*s.W : (c+1)*s.H*s.W]
		for ki := 0; ki < s.KH; ki++ {
			for kj := 0; kj < s.KW; kj++ {
				lo, hi := span(ow, s.W, s.Stride, s.Pad, kj)
				for oy := 0; oy < oh; oy++ {
					iy := oy*s.Stride - s.Pad + ki
					row := col[i : i+ow]
					i += ow
					if iy < 0 || iy >= s.H {
						zero(row)
						continue
					}
					xr := xc[iy*s.W : (iy+1)*s.W]
					zero(row[:lo])
					zero(row[hi:])
					if s.Stride == 1 {
						copy(row[lo:hi], xr[lo-s.Pad+kj:])
						continue
					}
					ix := lo*s.Stride - s.Pad + kj
					for ox := lo; ox < hi; ox++ {
						row[ox] = xr[ix]
						ix += s.Stride
					}
				}
			}
		}
	}
}

// col2im accumulates a patch matrix back into one frame's dx.
func col2im(dx, col []float32, s Conv2DShape) {
	oh, ow := s.OutH(), s.OutW()
	i := 0
	for c := 0; c < s.C; c++ {
		dc := dx[c*s.H*s.W : (c+1)*s.H*s.W]
		for ki := 0; ki < s.KH; ki++ {
			for kj := 0; kj < s.KW; kj++ {
				lo, hi := span(ow, s.W, s.Stride, s.Pad, kj)
				for oy := 0; oy < oh; oy++ {
					iy := oy*s.Stride - s.Pad + ki
					row := col[i : i+ow]
					i += ow
					if iy < 0 || iy >= s.H || lo >= hi {
						continue
					}
					dr := dc[iy*s.W : (iy+1)*s.W]
					if s.Stride == 1 {
						src := row[lo:hi]
						dst := dr[lo-s.Pad+kj:]
						dst = dst[:len(src)]
						for j, v := range src {
							dst[j] += v
						}
						continue
					}
					ix := lo*s.Stride - s.Pad + kj
					for ox := lo; ox < hi; ox++ {
						dr[ix] += row[ox]
						ix += s.Stride
					}
				}
			}
		}
	}
}

// colPool holds per-call im2col buffers.
var colPool = sync.Pool{New: func() any { return new([]float32) }}

// Conv2DForward computes y = conv(x, w) + b. b may be nil. y is overwritten.
func Conv2DForward(y, x, w, b []float32, s Conv2DShape) {
	oh, ow := s.OutH(), s.OutW()
	ohw := oh * ow
	ckk := s.C * s.KH * s.KW
	parallelFor(s.N, func(_, n int) {
		xn := x[n*s.C*s.H*s.W : (n+1)*s.C*s.H*s.W]
		yn := y[n*s.K*ohw : (n+1)*s.K*ohw]
		col := xn
		var bp *[]float32
		if !s.pointwise() {
			bp = colPool.Get().(*[]float32)
			col = scratch(bp, ckk*ohw)
			im2col(col, xn, s)
		}
		Sgemm(false, false, s.K, ohw, ckk, 1, w, ckk, col, ohw, 0, yn, ohw)
		if bp != nil {
			colPool.Put(bp)
		}
		if b != nil {
			for k := 0; k < s.K; k++ {
				row := yn[k*ohw : (k+1)*ohw]
				bk := b[k]
				for i := range row {
					row[i] += bk
				}
			}
		}
	})
}

// Conv2DBackwardData computes dx from dy and w. dx is overwritten.
func Conv2DBackwardData(dx, dy, w []float32, s Conv2DShape) {
	if s.sameSize() && s.K*s.KH*s.KW <= kc {
		// a stride-1 "same" conv's data gradient is the forward conv of dy
		// with the kernel flipped and its channel axes swapped: im2col's
		// copies instead of col2im's scattered adds (faster while that
		// conv's depth fits one packed block; BenchmarkConv2DBackwardData)
		Conv2DForward(dx, dy, flippedKernel(w, s), nil, Conv2DShape{N: s.N, C: s.K, H: s.H, W: s.W, K: s.C, KH: s.KH, KW: s.KW, Stride: 1, Pad: s.Pad})
		return
	}
	conv2DBackwardDataCol2im(dx, dy, w, s)
}

// conv2DBackwardDataCol2im is Conv2DBackwardData of any conv: the patch
// matrix's gradient, scattered back by col2im.
func conv2DBackwardDataCol2im(dx, dy, w []float32, s Conv2DShape) {
	oh, ow := s.OutH(), s.OutW()
	ohw := oh * ow
	ckk := s.C * s.KH * s.KW
	parallelFor(s.N, func(_, n int) {
		dxn := dx[n*s.C*s.H*s.W : (n+1)*s.C*s.H*s.W]
		dyn := dy[n*s.K*ohw : (n+1)*s.K*ohw]
		if s.pointwise() {
			Sgemm(true, false, ckk, ohw, s.K, 1, w, ckk, dyn, ohw, 0, dxn, ohw)
			return
		}
		bp := colPool.Get().(*[]float32)
		col := scratch(bp, ckk*ohw)
		Sgemm(true, false, ckk, ohw, s.K, 1, w, ckk, dyn, ohw, 0, col, ohw)
		zero(dxn)
		col2im(dxn, col, s)
		colPool.Put(bp)
	})
}

// filterChunks is the fixed number of frame chunks the filter gradient is
// split into: partial sums per chunk, added in chunk order, so the result is
// bit-identical whatever the number of cores.
const filterChunks = 8

// Conv2DBackwardFilter computes dw (and db when not nil) from dy and x.
// dw and db are overwritten. The result does not depend on GOMAXPROCS.
func Conv2DBackwardFilter(dw, db, dy, x []float32, s Conv2DShape) {
	oh, ow := s.OutH(), s.OutW()
	ohw := oh * ow
	ckk := s.C * s.KH * s.KW
	chunks := min(filterChunks, s.N)
	parts := make([][]float32, chunks)
	parallelFor(chunks, func(_, ch int) {
		part := make([]float32, len(dw))
		var bp *[]float32
		for n := ch * s.N / chunks; n < (ch+1)*s.N/chunks; n++ {
			xn := x[n*s.C*s.H*s.W : (n+1)*s.C*s.H*s.W]
			dyn := dy[n*s.K*ohw : (n+1)*s.K*ohw]
			col := xn
			if !s.pointwise() {
				if bp == nil {
					bp = colPool.Get().(*[]float32)
				}
				col = scratch(bp, ckk*ohw)
				im2col(col, xn, s)
			}
			Sgemm(false, true, s.K, ckk, ohw, 1, dyn, ohw, col, ohw, 1, part, ckk)
		}
		if bp != nil {
			colPool.Put(bp)
		}
		parts[ch] = part
	})
	copy(dw, parts[0])
	for _, p := range parts[1:] {
		for i, v := range p {
			dw[i] += v
		}
	}
	if db != nil {
		zero(db)
		for n := 0; n < s.N; n++ {
			dyn := dy[n*s.K*ohw : (n+1)*s.K*ohw]
			for k := 0; k < s.K; k++ {
				var acc float32
				for _, v := range dyn[k*ohw : (k+1)*ohw] {
					acc += v
				}
				db[k] += acc
			}
		}
	}
}
