package cuda

import (
	"fmt"
	"math"
)

// SDPAShape describes scaled dot-product attention over B independent sequences
// (batch times heads) of L tokens with head width D: q, k, v and the output are
// (B, L, D), the probabilities (B, L, L). Spatial attention has L = H*W tokens per frame,
// temporal attention L = T tokens per pixel; [Device.Permute] brings activations into
// this layout. Scale 0 means 1/sqrt(D).
type SDPAShape struct {
	B, L, D int
	Scale   float32
}

func (s SDPAShape) scale() float32 {
	if s.Scale != 0 {
		return s.Scale
	}
	return float32(1 / math.Sqrt(float64(s.D)))
}

// Validate reports an impossible shape.
func (s SDPAShape) Validate() error {
	if s.B <= 0 || s.L <= 0 || s.D <= 0 {
		return fmt.Errorf("cuda: sdpa: bad shape %+v", s)
	}
	return nil
}

// SDPAForward computes o = softmax(scale·q kᵀ) v and leaves the probabilities in p
// for the backward pass: two batched GEMMs around a row softmax.
func (d *Device) SDPAForward(o, p, q, k, v *Tensor, s SDPAShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	n, ll := s.B*s.L*s.D, s.B*s.L*s.L
	if err := d.checkOperands("sdpa", operand{"o", o, n}, operand{"p", p, ll}, operand{"q", q, n}, operand{"k", k, n}, operand{"v", v, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.sdpaForwardLocked(o.Ptr(), p.Ptr(), q.Ptr(), k.Ptr(), v.Ptr(), s)
}

func (d *Device) sdpaForwardLocked(o, p, q, k, v uintptr, s SDPAShape) error {
	ld, lq := int64(s.L*s.D), int64(s.L*s.L)
	if err := d.gemmLocked(Gemm{TransB: true, M: s.L, N: s.L, K: s.D, Alpha: 1, A: q, B: k, C: p,
		StrideA: ld, StrideB: ld, StrideC: lq, Batch: s.B}); err != nil {
		return err
	}
	if err := d.perRow("softmax_rows_fwd", s.B*s.L, argPtr(p), argPtr(p), argInt(s.B*s.L), argInt(s.L), argF32(s.scale())); err != nil {
		return err
	}
	return d.gemmLocked(Gemm{M: s.L, N: s.D, K: s.L, Alpha: 1, A: p, B: v, C: o,
		StrideA: lq, StrideB: ld, StrideC: ld, Batch: s.B})
}

// SDPABackward computes dq, dk and dv from do and the forward's p, q, k, v.
func (d *Device) SDPABackward(dq, dk, dv, do, p, q, k, v *Tensor, s SDPAShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	n, ll := s.B*s.L*s.D, s.B*s.L*s.L
	if err := d.checkOperands("sdpa backward", operand{"dq", dq, n}, operand{"dk", dk, n}, operand{"dv", dv, n},
		operand{"do", do, n}, operand{"p", p, ll}, operand{"q", q, n}, operand{"k", k, n}, operand{"v", v, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.sdpaBackwardLocked(dq.Ptr(), dk.Ptr(), dv.Ptr(), do.Ptr(), p.Ptr(), q.Ptr(), k.Ptr(), v.Ptr(), s)
}

func (d *Device) sdpaBackwardLocked(dq, dk, dv, do, p, q, k, v uintptr, s SDPAShape) error {
	ld, lq := int64(s.L*s.D), int64(s.L*s.L)
	ll := s.B * s.L * s.L
	// dv = pᵀ do
	if err := d.gemmLocked(Gemm{TransA: true, M: s.L, N: s.D, K: s.L, Alpha: 1, A: p, B: do, C: dv,
		StrideA: lq, StrideB: ld, StrideC: ld, Batch: s.B}); err != nil {
		return err
	}
	ds, err := d.scratch(ll)
	if err != nil {
		return err
	}
	defer ds.Free()
	// dp = do vᵀ, then ds = scale·p∘(dp - rowsum(dp∘p)) in place
	if err := d.gemmLocked(Gemm{TransB: true, M: s.L, N: s.L, K: s.D, Alpha: 1, A: do, B: v, C: ds.Ptr(),
		StrideA: ld, StrideB: ld, StrideC: lq, Batch: s.B}); err != nil {
		return err
	}
	if err := d.perRow("softmax_rows_bwd", s.B*s.L, argT(ds), argT(ds), argPtr(p), argInt(s.B*s.L), argInt(s.L), argF32(s.scale())); err != nil {
		return err
	}
	// dq = ds k, dk = dsᵀ q
	if err := d.gemmLocked(Gemm{M: s.L, N: s.D, K: s.L, Alpha: 1, A: ds.Ptr(), B: k, C: dq,
		StrideA: lq, StrideB: ld, StrideC: ld, Batch: s.B}); err != nil {
		return err
	}
	return d.gemmLocked(Gemm{TransA: true, M: s.L, N: s.D, K: s.L, Alpha: 1, A: ds.Ptr(), B: q, C: dk,
		StrideA: lq, StrideB: ld, StrideC: ld, Batch: s.B})
}
