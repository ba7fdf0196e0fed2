package gpu

import (
	"math"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// The half-precision modes of the SD executor (SDOptions.Precision bf16 or
// fp16): frozen linear weights are stored in 16 bits (their float32 copy is
// not kept), and the matrix products of the linear layers read 16-bit
// operands and accumulate in float32 (cublasGemmStridedBatchedEx,
// CUBLAS_COMPUTE_32F); frozen convolutions likewise (sd_half.go). In the
// bf16 mode the attention of the frozen layers runs on bfloat16 operands.
// Activations, gradients, norms and the trainable weights' master copies
// stay float32 (the trainable temporal layers' products: sd_t16.go);
// attention scores are float32, its probabilities and their gradients
// bfloat16.

const bf16Size = 2

// newHalf allocates room for n 16-bit values.
func (s *SDNet) newHalf(n int) (*cuda.Tensor, error) { return s.dev.NewTensor((n + 1) / 2) }

// toHalf returns a bfloat16 copy of x.
func (s *SDNet) toHalf(x *cuda.Tensor) (*cuda.Tensor, error) {
	h, err := s.newHalf(x.Len())
	if err != nil {
		return nil, err
	}
	if err := s.k.launch("sd_f32_to_bf16", s.k.gridFor(int64(x.Len())), cuda.PtrArg(h.Ptr()), cuda.PtrArg(x.Ptr()), cuda.Int64Arg(int64(x.Len()))); err != nil {
		h.Free()
		return nil, err
	}
	return h, nil
}

func (s *SDNet) toHalfAll(ts ...*cuda.Tensor) ([]*cuda.Tensor, func(), error) {
	out := make([]*cuda.Tensor, len(ts))
	free := func() {
		for _, t := range out {
			t.Free()
		}
	}
	for i, t := range ts {
		h, err := s.toHalf(t)
		if err != nil {
			free()
			return nil, nil, err
		}
		out[i] = h
	}
	return out, free, nil
}

// halfWeight reports whether parameter name is stored in 16 bits: a frozen
// weight of a linear layer or a convolution in a half precision.
func halfWeight(net *model.Net, p Precision, trainable func(model.ParamSpec) bool, name string) bool {
	if !p.Half() || (trainable != nil && trainable(specOf(net, name))) {
		return false
	}
	for _, l := range net.Layers {
		switch l.Kind {
		case model.Linear, model.Conv2D, model.Conv2DPadEnd:
			if len(l.Params) > 0 && l.Params[0] == name {
				return l.Kind == model.Linear || halfConvs
			}
		}
	}
	return false
}

func specOf(net *model.Net, name string) model.ParamSpec {
	for _, p := range net.Params {
		if p.Name == name {
			return p
		}
	}
	return model.ParamSpec{Name: name}
}

// uploadHalf uploads data as a tensor of the net's 16-bit type; a
// convolution filter (4 dimensions) is stored as the convolutions read it
// (sd_half.go: halfFilterLayout).
func (s *SDNet) uploadHalf(data []float32, shape []int) (*cuda.Tensor, error) {
	if len(shape) == 4 {
		data = halfFilterLayout(data, shape)
	}
	f, err := s.dev.FromHost(data, shape...)
	if err != nil {
		return nil, err
	}
	defer f.Free()
	if s.arena == nil {
		return s.toHalfOf(f, s.prec.dataType())
	}
	h, err := s.arena.take(s.dev, cuda.HalfLen(f.Len()))
	if err != nil {
		return nil, err
	}
	return h, s.dev.ToHalf(h, f, s.prec.dataType())
}

// toHalfOf returns a copy of x in the 16-bit type t.
func (s *SDNet) toHalfOf(x *cuda.Tensor, t cuda.DataType) (*cuda.Tensor, error) {
	h, err := s.dev.NewHalf(x.Len())
	if err != nil {
		return nil, err
	}
	if err := s.dev.ToHalf(h, x, t); err != nil {
		h.Free()
		return nil, err
	}
	return h, nil
}

func gemmBF16(g cuda.Gemm, c cuda.DataType) cuda.GemmEx { return gemmHalf(g, cuda.TypeBF16, c) }

func gemmHalf(g cuda.Gemm, t, c cuda.DataType) cuda.GemmEx {
	return cuda.GemmEx{Gemm: g, TypeA: t, TypeB: t, TypeC: c}
}

// linearForward is y = x Wᵀ + b, on 16-bit operands where W is stored so
// or is trainable in a half precision (sd_t16.go).
func (s *SDNet) linearForward(l model.Layer, y, x *cuda.Tensor, ls nn.LinearShape) error {
	w, freeW, err := s.linearHalfWeight(l)
	if err != nil {
		return err
	}
	defer freeW()
	if w == nil {
		return s.dev.LinearForward(y, x, s.param(l, 0), s.param(l, 1), ls)
	}
	t := s.prec.dataType()
	xb, freeX, err := s.halfOf(l.In[0], x, t) // kept for a trainable reader's backward (sd_saved.go)
	if err != nil {
		return err
	}
	defer freeX()
	if err := s.dev.GemmEx(gemmHalf(cuda.Gemm{TransB: true, M: ls.N, N: ls.Out, K: ls.In, Alpha: 1, A: xb.Ptr(), B: w.Ptr(), C: y.Ptr(), Batch: 1}, t, cuda.TypeF32)); err != nil {
		return err
	}
	if b := s.param(l, 1); b != nil {
		return s.tc.bias(y.Ptr(), b.Ptr(), int64(ls.N), ls.Out, 1)
	}
	return nil
}

// linearBackwardData is dx = dy W.
func (s *SDNet) linearBackwardData(l model.Layer, dx, dy *cuda.Tensor, ls nn.LinearShape) error {
	w := s.halfW[l.Params[0]]
	if w == nil {
		return s.dev.LinearBackwardData(dx, dy, s.param(l, 0), ls)
	}
	if wf, err := s.widenedWeight(l); err != nil || wf != nil {
		if err != nil {
			return err
		}
		defer wf.Free()
		return s.dev.LinearBackwardData(dx, dy, wf, ls)
	}
	t := s.prec.dataType()
	db, err := s.toHalfOf(dy, t)
	if err != nil {
		return err
	}
	defer db.Free()
	return s.dev.GemmEx(gemmHalf(cuda.Gemm{M: ls.N, N: ls.In, K: ls.Out, Alpha: 1, A: db.Ptr(), B: w.Ptr(), C: dx.Ptr(), Batch: 1}, t, cuda.TypeF32))
}

// halfAt is the address of head h of sequence n0 in a bfloat16 (N, L, C) copy.
func halfAt(t *cuda.Tensor, a nn.SeqAttentionShape, n0, L, h int) uintptr {
	return t.Ptr() + uintptr(n0*L*a.C+h*(a.C/a.Heads))*bf16Size
}

func f32At(t *cuda.Tensor, a nn.SeqAttentionShape, n0, L, h int) uintptr {
	return t.Ptr() + uintptr(n0*L*a.C+h*(a.C/a.Heads))*f32Size
}

// probsBF16 writes the float32 scores of head h of sequences n0..n0+nc to
// st and their softmax in bfloat16 to pb.
func (s *SDNet) probsBF16(st, pb, qb, kb *cuda.Tensor, a nn.SeqAttentionShape, h, n0, nc int) error {
	dh := a.C / a.Heads
	scale := float32(1 / math.Sqrt(float64(dh)))
	if err := s.dev.GemmEx(gemmBF16(cuda.Gemm{TransB: true, M: a.Lq, N: a.Lk, K: dh, Alpha: scale,
		A: halfAt(qb, a, n0, a.Lq, h), LDA: a.C, StrideA: int64(a.Lq * a.C),
		B: halfAt(kb, a, n0, a.Lk, h), LDB: a.C, StrideB: int64(a.Lk * a.C),
		C: st.Ptr(), LDC: a.Lk, StrideC: int64(a.Lq * a.Lk), Batch: nc}, cuda.TypeF32)); err != nil {
		return err
	}
	c := 0
	if a.Causal {
		c = 1
	}
	rows := int64(nc * a.Lq)
	return s.k.launch("sd_softmax_bf16", s.k.gridFor(rows*32), cuda.PtrArg(pb.Ptr()), cuda.PtrArg(st.Ptr()), cuda.Int64Arg(rows),
		cuda.IntArg(a.Lq), cuda.IntArg(a.Lk), cuda.IntArg(c))
}

// attnScratch allocates a chunk's float32 scores and two bfloat16 matrices.
func (s *SDNet) attnScratch(n int) (st, pb, db *cuda.Tensor, free func(), err error) {
	free = func() { st.Free(); pb.Free(); db.Free() }
	if st, err = s.dev.NewTensor(n); err != nil {
		return
	}
	if pb, err = s.newHalf(n); err != nil {
		free()
		return
	}
	if db, err = s.newHalf(n); err != nil {
		free()
	}
	return
}

func (s *SDNet) seqAttentionForwardBF16(l model.Layer, y, q, k, v *cuda.Tensor) error {
	a := s.attnShape(q, k, l.Heads, l.Causal)
	if err := a.Validate(); err != nil {
		return err
	}
	dh := a.C / a.Heads
	chunk := s.attnChunk(a)
	hs, freeH, err := s.toHalfAll(q, k, v)
	if err != nil {
		return err
	}
	defer freeH()
	qb, kb, vb := hs[0], hs[1], hs[2]
	st, pb, _, freeS, err := s.attnScratch(chunk * a.Lq * a.Lk)
	if err != nil {
		return err
	}
	defer freeS()
	for h := 0; h < a.Heads; h++ {
		for n0 := 0; n0 < a.N; n0 += chunk {
			nc := min(chunk, a.N-n0)
			if err := s.probsBF16(st, pb, qb, kb, a, h, n0, nc); err != nil {
				return err
			}
			if err := s.dev.GemmEx(gemmBF16(cuda.Gemm{M: a.Lq, N: dh, K: a.Lk, Alpha: 1,
				A: pb.Ptr(), LDA: a.Lk, StrideA: int64(a.Lq * a.Lk), B: halfAt(vb, a, n0, a.Lk, h), LDB: a.C, StrideB: int64(a.Lk * a.C),
				C: f32At(y, a, n0, a.Lq, h), LDC: a.C, StrideC: int64(a.Lq * a.C), Batch: nc}, cuda.TypeF32)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *SDNet) seqAttentionBackwardBF16(l model.Layer, dq, dk, dv, dout, q, k, v *cuda.Tensor) error {
	a := s.attnShape(q, k, l.Heads, l.Causal)
	dh := a.C / a.Heads
	chunk := s.attnChunk(a)
	hs, freeH, err := s.toHalfAll(q, k, v, dout)
	if err != nil {
		return err
	}
	defer freeH()
	qb, kb, vb, dob := hs[0], hs[1], hs[2], hs[3]
	st, pb, dsb, freeS, err := s.attnScratch(chunk * a.Lq * a.Lk)
	if err != nil {
		return err
	}
	defer freeS()
	scale := float32(1 / math.Sqrt(float64(dh)))
	sQ, sK, sP := int64(a.Lq*a.C), int64(a.Lk*a.C), int64(a.Lq*a.Lk)
	for h := 0; h < a.Heads; h++ {
		for n0 := 0; n0 < a.N; n0 += chunk {
			nc := min(chunk, a.N-n0)
			if err := s.probsBF16(st, pb, qb, kb, a, h, n0, nc); err != nil {
				return err
			}
			if dv != nil { // dV = Pᵀ dO
				if err := s.dev.GemmEx(gemmBF16(cuda.Gemm{TransA: true, M: a.Lk, N: dh, K: a.Lq, Alpha: 1,
					A: pb.Ptr(), LDA: a.Lk, StrideA: sP, B: halfAt(dob, a, n0, a.Lq, h), LDB: a.C, StrideB: sQ,
					C: f32At(dv, a, n0, a.Lk, h), LDC: a.C, StrideC: sK, Batch: nc}, cuda.TypeF32)); err != nil {
					return err
				}
			}
			if dq == nil && dk == nil {
				continue
			}
			// dP = dO Vᵀ (float32, over the scores), dS = scale P (dP - rowsum(dP P))
			if err := s.dev.GemmEx(gemmBF16(cuda.Gemm{TransB: true, M: a.Lq, N: a.Lk, K: dh, Alpha: 1,
				A: halfAt(dob, a, n0, a.Lq, h), LDA: a.C, StrideA: sQ, B: halfAt(vb, a, n0, a.Lk, h), LDB: a.C, StrideB: sK,
				C: st.Ptr(), LDC: a.Lk, StrideC: sP, Batch: nc}, cuda.TypeF32)); err != nil {
				return err
			}
			rows := int64(nc * a.Lq)
			if err := s.k.launch("sd_softmax_bwd_bf16", s.k.gridFor(rows*32), cuda.PtrArg(dsb.Ptr()), cuda.PtrArg(st.Ptr()), cuda.PtrArg(pb.Ptr()),
				cuda.Int64Arg(rows), cuda.IntArg(a.Lk), cuda.F32Arg(scale)); err != nil {
				return err
			}
			if dq != nil { // dQ = dS K
				if err := s.dev.GemmEx(gemmBF16(cuda.Gemm{M: a.Lq, N: dh, K: a.Lk, Alpha: 1,
					A: dsb.Ptr(), LDA: a.Lk, StrideA: sP, B: halfAt(kb, a, n0, a.Lk, h), LDB: a.C, StrideB: sK,
					C: f32At(dq, a, n0, a.Lq, h), LDC: a.C, StrideC: sQ, Batch: nc}, cuda.TypeF32)); err != nil {
					return err
				}
			}
			if dk != nil { // dK = dSᵀ Q
				if err := s.dev.GemmEx(gemmBF16(cuda.Gemm{TransA: true, M: a.Lk, N: dh, K: a.Lq, Alpha: 1,
					A: dsb.Ptr(), LDA: a.Lk, StrideA: sP, B: halfAt(qb, a, n0, a.Lq, h), LDB: a.C, StrideB: sQ,
					C: f32At(dk, a, n0, a.Lk, h), LDC: a.C, StrideC: sK, Batch: nc}, cuda.TypeF32)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
