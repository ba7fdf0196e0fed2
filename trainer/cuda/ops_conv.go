package cuda

import "github.com/timelapse-ml/pipeline/trainer/nn"

// maxColBytes caps the patch-matrix scratch of one convolution chunk.
const maxColBytes = 256 << 20

// convChunk is how many frames share one im2col/GEMM pass.
func convChunk(frames, perFrameFloats int) int {
	c := maxColBytes / (4 * perFrameFloats)
	if c < 1 {
		c = 1
	}
	if c > frames {
		c = frames
	}
	return c
}

func conv2dOperands(s nn.Conv2DShape) (in, out, w int) {
	return s.InLen(), s.OutLen(), s.WeightLen()
}

// im2colLocked writes the patch matrices of frames [n0, n0+ns) of x into col.
func (d *Device) im2colLocked(col, x *Tensor, n0, ns int, s nn.Conv2DShape) error {
	oh, ow := s.OutH(), s.OutW()
	xoff := uintptr(n0*s.C*s.H*s.W) * 4
	total := ns * s.C * s.KH * s.KW * oh * ow
	return d.elementwise("im2col", total, TensorArg(col), PtrArg(x.Ptr()+xoff), IntArg(ns), IntArg(s.C), IntArg(s.H), IntArg(s.W),
		IntArg(s.KH), IntArg(s.KW), IntArg(s.Stride), IntArg(s.Pad), IntArg(oh), IntArg(ow))
}

func pointwise(s nn.Conv2DShape) bool { return s.KH == 1 && s.KW == 1 && s.Stride == 1 && s.Pad == 0 }

// Conv2DForward computes y = conv(x, w) + b over N frames in NCHW (nn.Conv2DForward):
// im2col and one strided batched GEMM per chunk of frames. b may be nil.
func (d *Device) Conv2DForward(y, x, w, b *Tensor, s nn.Conv2DShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	in, out, wl := conv2dOperands(s)
	ops := append([]operand{{"y", y, out}, {"x", x, in}, {"w", w, wl}}, optional(operand{"b", b, s.K})...)
	if err := d.checkOperands("conv2d", ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	ohw := s.OutH() * s.OutW()
	if ran, err := d.tryDNN(conv2dGeom(s, convFwd), x.Ptr(), y.Ptr(), w.Ptr()); ran {
		if err != nil || b == nil {
			return err
		}
		return d.elementwise("add_bias_ncp", out, TensorArg(y), TensorArg(b), IntArg(s.N), IntArg(s.K), IntArg(ohw))
	}
	ckk := s.C * s.KH * s.KW
	chunk := convChunk(s.N, ckk*ohw)
	var col *Tensor
	if !pointwise(s) {
		var err error
		if col, err = d.scratch(chunk * ckk * ohw); err != nil {
			return err
		}
		defer col.Free()
	}
	for n0 := 0; n0 < s.N; n0 += chunk {
		ns := min(chunk, s.N-n0)
		src := x.Ptr() + uintptr(n0*s.C*s.H*s.W)*4
		if col != nil {
			if err := d.im2colLocked(col, x, n0, ns, s); err != nil {
				return err
			}
			src = col.Ptr()
		}
		if err := d.gemmLocked(Gemm{M: s.K, N: ohw, K: ckk, Alpha: 1, A: w.Ptr(), B: src,
			C: y.Ptr() + uintptr(n0*s.K*ohw)*4, StrideB: int64(ckk * ohw), StrideC: int64(s.K * ohw), Batch: ns}); err != nil {
			return err
		}
	}
	if b != nil {
		return d.elementwise("add_bias_ncp", out, TensorArg(y), TensorArg(b), IntArg(s.N), IntArg(s.K), IntArg(ohw))
	}
	return nil
}

// Conv2DBackwardData computes dx from dy and w (nn.Conv2DBackwardData): a batched GEMM
// into patch space and a col2im gather.
func (d *Device) Conv2DBackwardData(dx, dy, w *Tensor, s nn.Conv2DShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	in, out, wl := conv2dOperands(s)
	if err := d.checkOperands("conv2d backward data", operand{"dx", dx, in}, operand{"dy", dy, out}, operand{"w", w, wl}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if ran, err := d.tryDNN(conv2dGeom(s, convBwdData), dx.Ptr(), dy.Ptr(), w.Ptr()); ran {
		return err
	}
	oh, ow := s.OutH(), s.OutW()
	ohw := oh * ow
	ckk := s.C * s.KH * s.KW
	if pointwise(s) {
		return d.gemmLocked(Gemm{TransA: true, M: ckk, N: ohw, K: s.K, Alpha: 1, A: w.Ptr(), B: dy.Ptr(), C: dx.Ptr(),
			StrideB: int64(s.K * ohw), StrideC: int64(ckk * ohw), Batch: s.N})
	}
	chunk := convChunk(s.N, ckk*ohw)
	col, err := d.scratch(chunk * ckk * ohw)
	if err != nil {
		return err
	}
	defer col.Free()
	for n0 := 0; n0 < s.N; n0 += chunk {
		ns := min(chunk, s.N-n0)
		if err := d.gemmLocked(Gemm{TransA: true, M: ckk, N: ohw, K: s.K, Alpha: 1, A: w.Ptr(),
			B: dy.Ptr() + uintptr(n0*s.K*ohw)*4, C: col.Ptr(),
			StrideB: int64(s.K * ohw), StrideC: int64(ckk * ohw), Batch: ns}); err != nil {
			return err
		}
		total := ns * s.C * s.H * s.W
		if err := d.elementwise("col2im", total, PtrArg(dx.Ptr()+uintptr(n0*s.C*s.H*s.W)*4), TensorArg(col), IntArg(ns),
			IntArg(s.C), IntArg(s.H), IntArg(s.W), IntArg(s.KH), IntArg(s.KW), IntArg(s.Stride), IntArg(s.Pad),
			IntArg(oh), IntArg(ow)); err != nil {
			return err
		}
	}
	return nil
}

// Conv2DBackwardFilter computes dw and, when db is not nil, db (nn.Conv2DBackwardFilter):
// per-frame products dy·colᵀ in one batched GEMM per chunk, summed in a fixed order.
func (d *Device) Conv2DBackwardFilter(dw, db, dy, x *Tensor, s nn.Conv2DShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	in, out, wl := conv2dOperands(s)
	ops := append([]operand{{"dw", dw, wl}, {"dy", dy, out}, {"x", x, in}}, optional(operand{"db", db, s.K})...)
	if err := d.checkOperands("conv2d backward filter", ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	ohw := s.OutH() * s.OutW()
	if ran, err := d.tryDNN(conv2dGeom(s, convBwdFilter), x.Ptr(), dy.Ptr(), dw.Ptr()); ran {
		if err != nil || db == nil {
			return err
		}
		return d.sumChannelsLocked(db, dy, nn.ChannelShape{N: s.N, C: s.K, P: ohw}, false)
	}
	ckk := s.C * s.KH * s.KW
	per := ckk*ohw + s.K*ckk // patch matrix and partial dw of one frame
	if pointwise(s) {
		per = s.K * ckk
	}
	chunk := convChunk(s.N, per)
	var col *Tensor
	var err error
	if !pointwise(s) {
		if col, err = d.scratch(chunk * ckk * ohw); err != nil {
			return err
		}
		defer col.Free()
	}
	part, err := d.scratch(chunk * s.K * ckk)
	if err != nil {
		return err
	}
	defer part.Free()
	for n0 := 0; n0 < s.N; n0 += chunk {
		ns := min(chunk, s.N-n0)
		src := x.Ptr() + uintptr(n0*s.C*s.H*s.W)*4
		if col != nil {
			if err := d.im2colLocked(col, x, n0, ns, s); err != nil {
				return err
			}
			src = col.Ptr()
		}
		if err := d.gemmLocked(Gemm{TransB: true, M: s.K, N: ckk, K: ohw, Alpha: 1,
			A: dy.Ptr() + uintptr(n0*s.K*ohw)*4, B: src, C: part.Ptr(),
			StrideA: int64(s.K * ohw), StrideB: int64(ckk * ohw), StrideC: int64(s.K * ckk), Batch: ns}); err != nil {
			return err
		}
		acc := 0
		if n0 > 0 {
			acc = 1
		}
		if err := d.elementwise("sum_batches", wl, TensorArg(dw), TensorArg(part), IntArg(ns), IntArg(wl), IntArg(acc)); err != nil {
			return err
		}
	}
	if db != nil {
		return d.sumChannelsLocked(db, dy, nn.ChannelShape{N: s.N, C: s.K, P: ohw}, false)
	}
	return nil
}
