package cuda

import "github.com/timelapse-ml/pipeline/trainer/nn"

// The windowed temporal convolution: frames t-1, t, t+1 of one clip are adjacent in
// memory, so they already form the (3C, P) patch matrix of frame t. With the weight
// reordered to (K, 3, C), one batched GEMM covers every frame that has both neighbours,
// reading x in place (no patch matrix); two small batched GEMMs over the clips redo the
// first and last frame of each clip, which see only two taps. The interior GEMM runs over
// the whole batch as one sequence, so it also writes wrong values at clip boundaries;
// the boundary GEMMs, queued after it, overwrite exactly those frames.

// tconvWindowLocked computes out[f] = A · window(in, f) for every frame f of (B, T, ci, P)
// input windows, with A (co, 3ci) of row stride 3ci whose column block i multiplies
// frame t-1+i. The context must be current.
func (d *Device) tconvWindowLocked(out, in, a uintptr, b, t, ci, co, p int) error {
	return tconvWindow(d.gemmLocked, out, in, a, b, t, ci, co, p)
}

// tconvWindow issues the GEMMs of tconvWindowLocked through gemm (a CPU emulation in
// the tests checks the decomposition without a GPU).
func tconvWindow(gemm func(Gemm) error, out, in, a uintptr, b, t, ci, co, p int) error {
	ip, op := int64(ci*p), int64(co*p)
	lda := 3 * ci
	if t == 1 { // only the centre tap
		return gemm(Gemm{M: co, N: p, K: ci, Alpha: 1, A: a + uintptr(ci)*4, LDA: lda, B: in, C: out,
			StrideB: ip, StrideC: op, Batch: b})
	}
	if t >= 3 {
		if err := gemm(Gemm{M: co, N: p, K: 3 * ci, Alpha: 1, A: a, LDA: lda, B: in, C: out + uintptr(op)*4,
			StrideB: ip, StrideC: op, Batch: b*t - 2}); err != nil {
			return err
		}
	}
	// first frame of each clip: taps 1 and 2 over frames 0 and 1
	if err := gemm(Gemm{M: co, N: p, K: 2 * ci, Alpha: 1, A: a + uintptr(ci)*4, LDA: lda, B: in, C: out,
		StrideB: int64(t) * ip, StrideC: int64(t) * op, Batch: b}); err != nil {
		return err
	}
	// last frame: taps 0 and 1 over frames T-2 and T-1
	return gemm(Gemm{M: co, N: p, K: 2 * ci, Alpha: 1, A: a, LDA: lda, B: in + uintptr(int64(t-2)*ip)*4,
		C: out + uintptr(int64(t-1)*op)*4, StrideB: int64(t) * ip, StrideC: int64(t) * op, Batch: b})
}

// tconvForwardWindowed is TemporalConvForward without a patch matrix.
func (d *Device) tconvForwardWindowed(y, x, w, b *Tensor, s nn.TemporalConvShape) error {
	wr, err := d.scratch(s.WeightLen())
	if err != nil {
		return err
	}
	defer wr.Free()
	// (K, C, 3) -> (K, 3, C)
	if err := d.permuteLocked(wr.Ptr(), w.Ptr(), []int{s.K, s.C, 3}, []int{0, 2, 1}); err != nil {
		return err
	}
	if err := d.tconvWindowLocked(y.Ptr(), x.Ptr(), wr.Ptr(), s.B, s.T, s.C, s.K, s.P); err != nil {
		return err
	}
	if b != nil {
		return d.elementwise("add_bias_ncp", s.OutLen(), argT(y), argT(b), argInt(s.B*s.T), argInt(s.K), argInt(s.P))
	}
	return nil
}

// tconvBackwardDataWindowed is TemporalConvBackwardData without a patch matrix:
// dx[t] = Σ_j W_jᵀ dy[t-j+1] is the same windowed product over dy with the weight
// reordered to (C, 3, K), taps reversed.
func (d *Device) tconvBackwardDataWindowed(dx, dy, w *Tensor, s nn.TemporalConvShape) error {
	v, err := d.scratch(s.WeightLen())
	if err != nil {
		return err
	}
	defer v.Free()
	if err := d.elementwise("tconv_wt_bwd", s.WeightLen(), argT(v), argT(w), argInt(s.K), argInt(s.C)); err != nil {
		return err
	}
	return d.tconvWindowLocked(dx.Ptr(), dy.Ptr(), v.Ptr(), s.B, s.T, s.K, s.C, s.P)
}

// tconvSplits is how many column blocks of P the windowed filter gradient splits its
// long reductions into, so each GEMM has more, shorter pieces of work.
func tconvSplits(p int) int {
	for _, s := range []int{8, 4, 2} {
		if p%s == 0 && p/s >= 512 {
			return s
		}
	}
	return 1
}

// tconvFilterWindowParts issues the GEMMs of the windowed filter gradient into the
// partial buffers described at tconv_dw_reduce (T >= 3).
func tconvFilterWindowParts(gemm func(Gemm) error, part, bnd0, bnd1, dy, x uintptr, s nn.TemporalConvShape, splits int) error {
	b, t, c, k, p := s.B, s.T, s.C, s.K, s.P
	pc := p / splits
	cp, kp := int64(c*p), int64(k*p)
	nf := b*t - 2
	for sp := 0; sp < splits; sp++ {
		off := uintptr(sp*pc) * 4
		if err := gemm(Gemm{TransB: true, M: k, N: 3 * c, K: pc, Alpha: 1,
			A: dy + uintptr(kp)*4 + off, LDA: p, StrideA: kp,
			B: x + off, LDB: p, StrideB: cp,
			C: part + uintptr(sp*nf*k*3*c)*4, StrideC: int64(k * 3 * c), Batch: nf}); err != nil {
			return err
		}
		bnd := uintptr(sp*b*k*2*c) * 4
		if err := gemm(Gemm{TransB: true, M: k, N: 2 * c, K: pc, Alpha: 1,
			A: dy + off, LDA: p, StrideA: int64(t) * kp,
			B: x + off, LDB: p, StrideB: int64(t) * cp,
			C: bnd0 + bnd, StrideC: int64(k * 2 * c), Batch: b}); err != nil {
			return err
		}
		if err := gemm(Gemm{TransB: true, M: k, N: 2 * c, K: pc, Alpha: 1,
			A: dy + uintptr(int64(t-1)*kp)*4 + off, LDA: p, StrideA: int64(t) * kp,
			B: x + uintptr(int64(t-2)*cp)*4 + off, LDB: p, StrideB: int64(t) * cp,
			C: bnd1 + bnd, StrideC: int64(k * 2 * c), Batch: b}); err != nil {
			return err
		}
	}
	return nil
}

// tconvBackwardFilterWindowed is TemporalConvBackwardFilter without a patch matrix
// (T >= 3): GEMMs over in-place windows into partials, one fixed-order reduction.
func (d *Device) tconvBackwardFilterWindowed(dw, db, dy, x *Tensor, s nn.TemporalConvShape) error {
	splits := tconvSplits(s.P)
	nf := s.B*s.T - 2
	np, nb := splits*nf*s.K*3*s.C, splits*s.B*s.K*2*s.C
	tmp, err := d.scratch(np + 2*nb)
	if err != nil {
		return err
	}
	defer tmp.Free()
	part, bnd0, bnd1 := tmp.Ptr(), tmp.Ptr()+uintptr(np)*4, tmp.Ptr()+uintptr(np+nb)*4
	if err := tconvFilterWindowParts(d.gemmLocked, part, bnd0, bnd1, dy.Ptr(), x.Ptr(), s, splits); err != nil {
		return err
	}
	if err := d.elementwise("tconv_dw_reduce", s.WeightLen(), argT(dw), argPtr(part), argPtr(bnd0), argPtr(bnd1),
		argInt(splits), argInt(s.B), argInt(s.T), argInt(s.K), argInt(s.C)); err != nil {
		return err
	}
	if db != nil {
		return d.sumChannelsLocked(db, dy, nn.ChannelShape{N: s.B * s.T, C: s.K, P: s.P}, false)
	}
	return nil
}
