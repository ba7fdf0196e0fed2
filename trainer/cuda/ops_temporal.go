package cuda

import "github.com/timelapse-ml/pipeline/trainer/nn"

// tconvChunk is how many clips share one temporal patch matrix.
func tconvChunk(s nn.TemporalConvShape, extra int) int {
	per := s.T * (3*s.C*s.P + extra)
	return convChunk(s.B, per)
}

// TemporalConvForward computes the kernel-3 convolution over frames of a (B, T, C, P)
// activation (nn.TemporalConvForward): temporal patches (B*T, 3C, P) and one batched
// GEMM with the (K, C*3) weight. b may be nil.
//
// By default all three passes read the input in place (ops_temporal_window.go; the
// filter gradient for clips of at least 3 frames); SetTemporalIm2col(true) selects the
// patch-matrix path.
// cuDNN is not used here: measured on an H100 (bench/RESULTS.md) it was slower than the
// patch-matrix path in the forward pass and declined the strided layout in both
// backward passes.
func (d *Device) TemporalConvForward(y, x, w, b *Tensor, s nn.TemporalConvShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	ops := append([]operand{{"y", y, s.OutLen()}, {"x", x, s.InLen()}, {"w", w, s.WeightLen()}}, optional(operand{"b", b, s.K})...)
	if err := d.checkOperands("temporal conv", ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if !d.tconvIm2col {
		return d.tconvForwardWindowed(y, x, w, b, s)
	}
	chunk := tconvChunk(s, 0)
	rows := 3 * s.C
	col, err := d.scratch(chunk * s.T * rows * s.P)
	if err != nil {
		return err
	}
	defer col.Free()
	for b0 := 0; b0 < s.B; b0 += chunk {
		nb := min(chunk, s.B-b0)
		if err := d.elementwise("tcol", nb*s.T*rows*s.P, argT(col), argPtr(x.Ptr()+uintptr(b0*s.T*s.C*s.P)*4),
			argInt(nb), argInt(s.T), argInt(s.C), argInt(s.P)); err != nil {
			return err
		}
		if err := d.gemmLocked(Gemm{M: s.K, N: s.P, K: rows, Alpha: 1, A: w.Ptr(), B: col.Ptr(),
			C: y.Ptr() + uintptr(b0*s.T*s.K*s.P)*4, StrideB: int64(rows * s.P), StrideC: int64(s.K * s.P), Batch: nb * s.T}); err != nil {
			return err
		}
	}
	if b != nil {
		return d.elementwise("add_bias_ncp", s.OutLen(), argT(y), argT(b), argInt(s.B*s.T), argInt(s.K), argInt(s.P))
	}
	return nil
}

// TemporalConvBackwardData computes dx from dy and w (nn.TemporalConvBackwardData).
func (d *Device) TemporalConvBackwardData(dx, dy, w *Tensor, s nn.TemporalConvShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := d.checkOperands("temporal conv backward data", operand{"dx", dx, s.InLen()}, operand{"dy", dy, s.OutLen()}, operand{"w", w, s.WeightLen()}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if !d.tconvIm2col {
		return d.tconvBackwardDataWindowed(dx, dy, w, s)
	}
	chunk := tconvChunk(s, 0)
	rows := 3 * s.C
	col, err := d.scratch(chunk * s.T * rows * s.P)
	if err != nil {
		return err
	}
	defer col.Free()
	for b0 := 0; b0 < s.B; b0 += chunk {
		nb := min(chunk, s.B-b0)
		if err := d.gemmLocked(Gemm{TransA: true, M: rows, N: s.P, K: s.K, Alpha: 1, A: w.Ptr(),
			B: dy.Ptr() + uintptr(b0*s.T*s.K*s.P)*4, C: col.Ptr(),
			StrideB: int64(s.K * s.P), StrideC: int64(rows * s.P), Batch: nb * s.T}); err != nil {
			return err
		}
		if err := d.elementwise("tcol_adj", nb*s.T*s.C*s.P, argPtr(dx.Ptr()+uintptr(b0*s.T*s.C*s.P)*4), argT(col),
			argInt(nb), argInt(s.T), argInt(s.C), argInt(s.P)); err != nil {
			return err
		}
	}
	return nil
}

// TemporalConvBackwardFilter computes dw and, when db is not nil, db
// (nn.TemporalConvBackwardFilter).
func (d *Device) TemporalConvBackwardFilter(dw, db, dy, x *Tensor, s nn.TemporalConvShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	ops := append([]operand{{"dw", dw, s.WeightLen()}, {"dy", dy, s.OutLen()}, {"x", x, s.InLen()}}, optional(operand{"db", db, s.K})...)
	if err := d.checkOperands("temporal conv backward filter", ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if !d.tconvIm2col && s.T >= 3 {
		return d.tconvBackwardFilterWindowed(dw, db, dy, x, s)
	}
	rows := 3 * s.C
	wl := s.WeightLen()
	chunk := tconvChunk(s, s.K*rows) // patches and a partial dw per frame
	col, err := d.scratch(chunk * s.T * rows * s.P)
	if err != nil {
		return err
	}
	defer col.Free()
	part, err := d.scratch(chunk * s.T * wl)
	if err != nil {
		return err
	}
	defer part.Free()
	for b0 := 0; b0 < s.B; b0 += chunk {
		nb := min(chunk, s.B-b0)
		if err := d.elementwise("tcol", nb*s.T*rows*s.P, argT(col), argPtr(x.Ptr()+uintptr(b0*s.T*s.C*s.P)*4),
			argInt(nb), argInt(s.T), argInt(s.C), argInt(s.P)); err != nil {
			return err
		}
		if err := d.gemmLocked(Gemm{TransB: true, M: s.K, N: rows, K: s.P, Alpha: 1,
			A: dy.Ptr() + uintptr(b0*s.T*s.K*s.P)*4, B: col.Ptr(), C: part.Ptr(),
			StrideA: int64(s.K * s.P), StrideB: int64(rows * s.P), StrideC: int64(wl), Batch: nb * s.T}); err != nil {
			return err
		}
		acc := 0
		if b0 > 0 {
			acc = 1
		}
		if err := d.elementwise("sum_batches", wl, argT(dw), argT(part), argInt(nb*s.T), argInt(wl), argInt(acc)); err != nil {
			return err
		}
	}
	if db != nil {
		return d.sumChannelsLocked(db, dy, nn.ChannelShape{N: s.B * s.T, C: s.K, P: s.P}, false)
	}
	return nil
}
