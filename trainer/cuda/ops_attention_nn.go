package cuda

import "github.com/timelapse-ml/pipeline/trainer/nn"

// AttentionSaved keeps what AttentionForward computed for the backward pass: the heads'
// q, k and v, permuted to (3, sequences*Heads, L, C/Heads), and the softmax
// probabilities (sequences*Heads, L, L). Free it after the backward pass.
type AttentionSaved struct {
	QKV, P *Tensor
}

// Free releases the saved tensors.
func (a *AttentionSaved) Free() {
	if a != nil {
		a.QKV.Free()
		a.P.Free()
		a.QKV, a.P = nil, nil
	}
}

// attnPlan is how the packed (B*T, 3C, P) layout of nn.AttentionShape maps onto
// per-head sequences for the SDPA core.
type attnPlan struct {
	core            SDPAShape
	qkvIn, qkvPerm  []int // qkv -> (3, seqs, Heads, L, dh)
	outIn, outPerm  []int // O (seqs, Heads, L, dh) -> out
	doutIn, doutPrm []int // dout -> dO
}

func planAttention(s nn.AttentionShape) attnPlan {
	h, dh := s.Heads, s.C/s.Heads
	if !s.Temporal {
		f := s.B * s.T
		return attnPlan{
			core:  SDPAShape{B: f * h, L: s.P, D: dh},
			qkvIn: []int{f, 3, h, dh, s.P}, qkvPerm: []int{1, 0, 2, 4, 3},
			outIn: []int{f, h, s.P, dh}, outPerm: []int{0, 1, 3, 2},
			doutIn: []int{f, h, dh, s.P}, doutPrm: []int{0, 1, 3, 2},
		}
	}
	return attnPlan{
		core:  SDPAShape{B: s.B * s.P * h, L: s.T, D: dh},
		qkvIn: []int{s.B, s.T, 3, h, dh, s.P}, qkvPerm: []int{2, 0, 5, 3, 1, 4},
		outIn: []int{s.B, s.P, h, s.T, dh}, outPerm: []int{0, 3, 2, 4, 1},
		doutIn: []int{s.B, s.T, h, dh, s.P}, doutPrm: []int{0, 4, 2, 1, 3},
	}
}

// permuted returns the shape of in after perm, and the inverse permutation.
func permuted(in, perm []int) (shape, inv []int) {
	shape, inv = make([]int, len(in)), make([]int, len(in))
	for k, p := range perm {
		shape[k] = in[p]
		inv[p] = k
	}
	return shape, inv
}

// AttentionForward computes multi-head self-attention of the packed projection qkv
// (B*T, 3C, P) into out (B*T, C, P), spatially or temporally (nn.AttentionForward):
// a permutation into per-head sequences, the SDPA core, and a permutation back. When
// saved is not nil it receives the tensors the backward pass needs.
func (d *Device) AttentionForward(out, qkv *Tensor, s nn.AttentionShape, saved *AttentionSaved) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := d.checkOperands("attention", operand{"out", out, s.OutLen()}, operand{"qkv", qkv, s.InLen()}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	pl := planAttention(s)
	t, p, err := d.attnScores(qkv, pl)
	if err != nil {
		return err
	}
	n := s.OutLen()
	o, err := d.scratch(n)
	if err != nil {
		t.Free()
		p.Free()
		return err
	}
	defer o.Free()
	err = d.gemmLocked(Gemm{M: pl.core.L, N: pl.core.D, K: pl.core.L, Alpha: 1, A: p.Ptr(), B: t.Ptr() + uintptr(2*n)*4, C: o.Ptr(),
		StrideA: int64(pl.core.L * pl.core.L), StrideB: int64(pl.core.L * pl.core.D), StrideC: int64(pl.core.L * pl.core.D), Batch: pl.core.B})
	if err == nil {
		err = d.permuteLocked(out.Ptr(), o.Ptr(), pl.outIn, pl.outPerm)
	}
	if saved != nil && err == nil {
		saved.Free()
		saved.QKV, saved.P = t, p
		return nil
	}
	t.Free()
	p.Free()
	return err
}

// attnScores permutes qkv into per-head sequences t and computes the probabilities p.
func (d *Device) attnScores(qkv *Tensor, pl attnPlan) (t, p *Tensor, err error) {
	c := pl.core
	n := c.B * c.L * c.D
	if t, err = d.scratch(3 * n); err != nil {
		return nil, nil, err
	}
	if p, err = d.scratch(c.B * c.L * c.L); err != nil {
		t.Free()
		return nil, nil, err
	}
	if err = d.permuteLocked(t.Ptr(), qkv.Ptr(), pl.qkvIn, pl.qkvPerm); err == nil {
		ld, lq := int64(c.L*c.D), int64(c.L*c.L)
		err = d.gemmLocked(Gemm{TransB: true, M: c.L, N: c.L, K: c.D, Alpha: 1, A: t.Ptr(), B: t.Ptr() + uintptr(n)*4, C: p.Ptr(),
			StrideA: ld, StrideB: ld, StrideC: lq, Batch: c.B})
	}
	if err == nil {
		err = d.perRow("softmax_rows_fwd", c.B*c.L, argT(p), argT(p), argInt(c.B*c.L), argInt(c.L), argF32(c.scale()))
	}
	if err != nil {
		t.Free()
		p.Free()
		return nil, nil, err
	}
	return t, p, nil
}

// AttentionBackward computes dqkv (B*T, 3C, P) from dout (B*T, C, P) and qkv
// (nn.AttentionBackward). saved is what AttentionForward kept; nil recomputes it.
func (d *Device) AttentionBackward(dqkv, dout, qkv *Tensor, s nn.AttentionShape, saved *AttentionSaved) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := d.checkOperands("attention backward", operand{"dqkv", dqkv, s.InLen()}, operand{"dout", dout, s.OutLen()},
		operand{"qkv", qkv, s.InLen()}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	pl := planAttention(s)
	n := s.OutLen()
	var t, p *Tensor
	if saved != nil && saved.QKV != nil {
		if err := d.checkOperands("attention backward", operand{"saved qkv", saved.QKV, 3 * n},
			operand{"saved p", saved.P, pl.core.B * pl.core.L * pl.core.L}); err != nil {
			return err
		}
		t, p = saved.QKV, saved.P
	} else {
		var err error
		if t, p, err = d.attnScores(qkv, pl); err != nil {
			return err
		}
		defer t.Free()
		defer p.Free()
	}
	do, err := d.scratch(n)
	if err != nil {
		return err
	}
	defer do.Free()
	dt, err := d.scratch(3 * n)
	if err != nil {
		return err
	}
	defer dt.Free()
	if err := d.permuteLocked(do.Ptr(), dout.Ptr(), pl.doutIn, pl.doutPrm); err != nil {
		return err
	}
	off := uintptr(n) * 4
	if err := d.sdpaBackwardLocked(dt.Ptr(), dt.Ptr()+off, dt.Ptr()+2*off, do.Ptr(), p.Ptr(), t.Ptr(), t.Ptr()+off, t.Ptr()+2*off, pl.core); err != nil {
		return err
	}
	shape, inv := permuted(pl.qkvIn, pl.qkvPerm)
	return d.permuteLocked(dqkv.Ptr(), dt.Ptr(), shape, inv)
}
