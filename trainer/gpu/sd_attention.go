package gpu

import (
	"math"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Sequence attention (nn.SeqAttentionForward and its gradients) by cuBLAS:
// per head, over chunks of sequences small enough that their scores fit
// the budget, S = scale Q Kᵀ, P = softmax(S) (masked when causal), O = P V.
// Heads are read in place (column block h of the token-major q, k, v; no
// transposes). Nothing but q, k and v is kept for the backward pass: it
// recomputes each chunk's P, so no positions x positions matrix outlives
// its chunk.

const f32Size = 4

func (s *SDNet) attnShape(q, k *cuda.Tensor, heads int, causal bool) nn.SeqAttentionShape {
	return nn.SeqAttentionShape{N: q.Shape[0], Lq: q.Shape[1], Lk: k.Shape[1], C: q.Shape[2], Heads: heads, Causal: causal}
}

// attnChunk is how many sequences one chunk holds.
func (s *SDNet) attnChunk(a nn.SeqAttentionShape) int {
	return max(1, min(a.N, s.attnBudget/max(1, a.Lq*a.Lk)))
}

// probs writes P of head h of sequences n0..n0+nc into p (nc, Lq, Lk).
func (s *SDNet) probs(p uintptr, q, k *cuda.Tensor, a nn.SeqAttentionShape, h, n0, nc int) error {
	dh := a.C / a.Heads
	scale := float32(1 / math.Sqrt(float64(dh)))
	qh := q.Ptr() + uintptr(n0*a.Lq*a.C+h*dh)*f32Size
	kh := k.Ptr() + uintptr(n0*a.Lk*a.C+h*dh)*f32Size
	if err := s.dev.Gemm(cuda.Gemm{TransB: true, M: a.Lq, N: a.Lk, K: dh, Alpha: scale,
		A: qh, LDA: a.C, StrideA: int64(a.Lq * a.C), B: kh, LDB: a.C, StrideB: int64(a.Lk * a.C),
		C: p, LDC: a.Lk, StrideC: int64(a.Lq * a.Lk), Batch: nc}); err != nil {
		return err
	}
	return s.k.softmaxMasked(p, p, int64(nc*a.Lq), a.Lq, a.Lk, a.Causal)
}

func (s *SDNet) seqAttentionForward(l model.Layer, y, q, k, v *cuda.Tensor) error {
	a := s.attnShape(q, k, l.Heads, l.Causal)
	if err := a.Validate(); err != nil {
		return err
	}
	dh := a.C / a.Heads
	chunk := s.attnChunk(a)
	pt, err := s.dev.NewTensor(chunk * a.Lq * a.Lk)
	if err != nil {
		return err
	}
	defer pt.Free()
	for h := 0; h < a.Heads; h++ {
		for n0 := 0; n0 < a.N; n0 += chunk {
			nc := min(chunk, a.N-n0)
			if err := s.probs(pt.Ptr(), q, k, a, h, n0, nc); err != nil {
				return err
			}
			vh := v.Ptr() + uintptr(n0*a.Lk*a.C+h*dh)*f32Size
			oh := y.Ptr() + uintptr(n0*a.Lq*a.C+h*dh)*f32Size
			if err := s.dev.Gemm(cuda.Gemm{M: a.Lq, N: dh, K: a.Lk, Alpha: 1,
				A: pt.Ptr(), LDA: a.Lk, StrideA: int64(a.Lq * a.Lk), B: vh, LDB: a.C, StrideB: int64(a.Lk * a.C),
				C: oh, LDC: a.C, StrideC: int64(a.Lq * a.C), Batch: nc}); err != nil {
				return err
			}
		}
	}
	return nil
}

// seqAttentionBackward writes dq, dk, dv (nil ones skipped) from dout.
func (s *SDNet) seqAttentionBackward(l model.Layer, dq, dk, dv, dout, q, k, v *cuda.Tensor) error {
	a := s.attnShape(q, k, l.Heads, l.Causal)
	dh := a.C / a.Heads
	chunk := s.attnChunk(a)
	pt, err := s.dev.NewTensor(chunk * a.Lq * a.Lk)
	if err != nil {
		return err
	}
	defer pt.Free()
	dpt, err := s.dev.NewTensor(chunk * a.Lq * a.Lk)
	if err != nil {
		return err
	}
	defer dpt.Free()
	scale := float32(1 / math.Sqrt(float64(dh)))
	at := func(t *cuda.Tensor, n0, L int, h int) uintptr {
		return t.Ptr() + uintptr(n0*L*a.C+h*dh)*f32Size
	}
	for h := 0; h < a.Heads; h++ {
		for n0 := 0; n0 < a.N; n0 += chunk {
			nc := min(chunk, a.N-n0)
			sQ, sK := int64(a.Lq*a.C), int64(a.Lk*a.C)
			sP := int64(a.Lq * a.Lk)
			if err := s.probs(pt.Ptr(), q, k, a, h, n0, nc); err != nil {
				return err
			}
			if dv != nil { // dV = Pᵀ dO
				if err := s.dev.Gemm(cuda.Gemm{TransA: true, M: a.Lk, N: dh, K: a.Lq, Alpha: 1,
					A: pt.Ptr(), LDA: a.Lk, StrideA: sP, B: at(dout, n0, a.Lq, h), LDB: a.C, StrideB: sQ,
					C: at(dv, n0, a.Lk, h), LDC: a.C, StrideC: sK, Batch: nc}); err != nil {
					return err
				}
			}
			if dq == nil && dk == nil {
				continue
			}
			// dP = dO Vᵀ, then dS = scale P (dP - rowsum(dP P))
			if err := s.dev.Gemm(cuda.Gemm{TransB: true, M: a.Lq, N: a.Lk, K: dh, Alpha: 1,
				A: at(dout, n0, a.Lq, h), LDA: a.C, StrideA: sQ, B: at(v, n0, a.Lk, h), LDB: a.C, StrideB: sK,
				C: dpt.Ptr(), LDC: a.Lk, StrideC: sP, Batch: nc}); err != nil {
				return err
			}
			if err := s.k.softmaxRowsBackward(dpt.Ptr(), dpt.Ptr(), pt.Ptr(), int64(nc*a.Lq), a.Lk, scale); err != nil {
				return err
			}
			if dq != nil { // dQ = dS K
				if err := s.dev.Gemm(cuda.Gemm{M: a.Lq, N: dh, K: a.Lk, Alpha: 1,
					A: dpt.Ptr(), LDA: a.Lk, StrideA: sP, B: at(k, n0, a.Lk, h), LDB: a.C, StrideB: sK,
					C: at(dq, n0, a.Lq, h), LDC: a.C, StrideC: sQ, Batch: nc}); err != nil {
					return err
				}
			}
			if dk != nil { // dK = dSᵀ Q
				if err := s.dev.Gemm(cuda.Gemm{TransA: true, M: a.Lk, N: dh, K: a.Lq, Alpha: 1,
					A: dpt.Ptr(), LDA: a.Lk, StrideA: sP, B: at(q, n0, a.Lq, h), LDB: a.C, StrideB: sQ,
					C: at(dk, n0, a.Lk, h), LDC: a.C, StrideC: sK, Batch: nc}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
