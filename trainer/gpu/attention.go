package gpu

import (
	"math"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// Attention on the GPU, the same function as nn.AttentionForward. The
// packed projection qkv holds, per sequence, channel-major rows: queries in
// channels [0, C), keys in [C, 2C), values in [2C, 3C), head h using
// channels h*dh..(h+1)*dh of each (dh = C/heads), each channel a row of L
// tokens. Spatial attention's sequences are the frames (L = H*W) and qkv is
// already laid out so; temporal attention's sequences are the pixels of
// each clip (L = T), so qkv (B, T, 3C, P) is permuted to (B, P, 3C, T)
// first and the output permuted back.
//
// Per head, with the scale folded into the first product:
//
//	S = scale * Q K^T   (strided batched GEMM over sequences)
//	P = softmax_rows(S) (kept for the backward pass)
//	O^T = V^T P^T
//
// Backward:
//
//	dV^T = dO^T P, dP = dO V^T, dS = scale * P * (dP - rowsum(dP * P)),
//	dQ^T = K^T dS^T, dK^T = Q^T dS.

// attnSaved is what an attention layer keeps for its backward pass.
type attnSaved struct {
	probs *cuda.Tensor // (heads, seqs, L, L)
	qkvT  *cuda.Tensor // temporal only: qkv permuted to (B, P, 3C, T)
}

func (a *attnSaved) free() {
	a.probs.Free()
	a.qkvT.Free()
}

// attnGeom is one attention layer's sequence geometry.
type attnGeom struct {
	seqs, L, C, heads int
	temporal          bool
	B, T, P           int
}

func (s *Step) attnGeom(l model.Layer) attnGeom {
	sh := s.p.shapes[l.Out] // (N, C, H, W)
	g := attnGeom{C: sh[1], heads: l.Heads, temporal: l.Temporal, B: s.p.B, T: s.p.T, P: sh[2] * sh[3]}
	if l.Temporal {
		g.seqs, g.L = g.B*g.P, g.T
	} else {
		g.seqs, g.L = sh[0], g.P
	}
	return g
}

func (g attnGeom) dh() int { return g.C / g.heads }

func (g attnGeom) scale() float32 { return float32(1 / math.Sqrt(float64(g.dh()))) }

// frameMajor and back are the two permutations of temporal attention.
func (g attnGeom) toSeq(ch int) (in, perm []int) { return []int{g.B, g.T, ch, g.P}, []int{0, 3, 2, 1} }
func (g attnGeom) fromSeq(ch int) (in, perm []int) {
	return []int{g.B, g.P, ch, g.T}, []int{0, 3, 2, 1}
}

const f32 = 4

// attentionForward computes layer i's output y from qkv.
func (s *Step) attentionForward(i int, l model.Layer, y, qkv *cuda.Tensor) error {
	d := s.dev
	g := s.attnGeom(l)
	probs, err := d.NewTensor(g.heads, g.seqs, g.L, g.L)
	if err != nil {
		return err
	}
	saved := &attnSaved{probs: probs}
	keep := s.keeps(i)
	defer func() {
		if keep {
			s.attn[i] = saved
		} else {
			saved.free()
		}
	}()
	src, dst := qkv, y
	if g.temporal {
		if saved.qkvT, err = d.NewTensor(qkv.Shape...); err != nil {
			return err
		}
		in, perm := g.toSeq(3 * g.C)
		if err := d.Permute(saved.qkvT, qkv, in, perm); err != nil {
			return err
		}
		src = saved.qkvT
		if dst, err = d.NewTensor(y.Shape...); err != nil {
			return err
		}
		defer dst.Free()
	}
	if err := s.attnCore(dst.Ptr(), src.Ptr(), probs.Ptr(), g); err != nil {
		return err
	}
	if g.temporal {
		in, perm := g.fromSeq(g.C)
		return d.Permute(y, dst, in, perm)
	}
	return nil
}

// attnCore: out (seqs, C, L) from qkv (seqs, 3C, L); probs (heads, seqs, L, L).
func (s *Step) attnCore(out, qkv, probs uintptr, g attnGeom) error {
	d := s.dev
	L, C, dh := g.L, g.C, g.dh()
	ld := int64(3 * C * L)
	ll := int64(L * L)
	for h := 0; h < g.heads; h++ {
		ph := probs + uintptr(int64(h)*int64(g.seqs)*ll*f32)
		if err := d.Gemm(cuda.Gemm{TransA: true, M: L, N: L, K: dh, Alpha: g.scale(),
			A: qkv + uintptr(h*dh*L*f32), LDA: L, B: qkv + uintptr((C+h*dh)*L*f32), LDB: L, C: ph, LDC: L,
			StrideA: ld, StrideB: ld, StrideC: ll, Batch: g.seqs}); err != nil {
			return err
		}
	}
	if err := s.k.softmaxRows(probs, probs, int64(g.heads)*int64(g.seqs)*int64(L), L); err != nil {
		return err
	}
	for h := 0; h < g.heads; h++ {
		ph := probs + uintptr(int64(h)*int64(g.seqs)*ll*f32)
		if err := d.Gemm(cuda.Gemm{TransB: true, M: dh, N: L, K: L, Alpha: 1,
			A: qkv + uintptr((2*C+h*dh)*L*f32), LDA: L, B: ph, LDB: L, C: out + uintptr(h*dh*L*f32), LDC: L,
			StrideA: ld, StrideB: ll, StrideC: int64(C * L), Batch: g.seqs}); err != nil {
			return err
		}
	}
	return nil
}

// attentionBackward computes dqkv from dy and the saved state of layer i.
func (s *Step) attentionBackward(i int, l model.Layer, dqkv, dy, qkv *cuda.Tensor) error {
	d := s.dev
	g := s.attnGeom(l)
	a := s.attn[i]
	src, dout, dst := qkv, dy, dqkv
	if g.temporal {
		src = a.qkvT
		t, err := d.NewTensor(dy.Shape...)
		if err != nil {
			return err
		}
		defer t.Free()
		in, perm := g.toSeq(g.C)
		if err := d.Permute(t, dy, in, perm); err != nil {
			return err
		}
		dout = t
		if dst, err = d.NewTensor(dqkv.Shape...); err != nil {
			return err
		}
		defer dst.Free()
	}
	ds, err := d.NewTensor(g.seqs, g.L, g.L)
	if err != nil {
		return err
	}
	defer ds.Free()
	if err := s.attnCoreBackward(dst.Ptr(), dout.Ptr(), src.Ptr(), a.probs.Ptr(), ds.Ptr(), g); err != nil {
		return err
	}
	if g.temporal {
		in, perm := g.fromSeq(3 * g.C)
		return d.Permute(dqkv, dst, in, perm)
	}
	return nil
}

// attnCoreBackward: dqkv (seqs, 3C, L) from dout (seqs, C, L), qkv and probs;
// ds is (seqs, L, L) scratch.
func (s *Step) attnCoreBackward(dqkv, dout, qkv, probs, ds uintptr, g attnGeom) error {
	d := s.dev
	L, C, dh := g.L, g.C, g.dh()
	ld := int64(3 * C * L)
	lo := int64(C * L)
	ll := int64(L * L)
	off := func(base uintptr, ch int) uintptr { return base + uintptr(ch*L*f32) }
	for h := 0; h < g.heads; h++ {
		ph := probs + uintptr(int64(h)*int64(g.seqs)*ll*f32)
		do := off(dout, h*dh)
		// dV^T = dO^T P
		if err := d.Gemm(cuda.Gemm{M: dh, N: L, K: L, Alpha: 1, A: do, LDA: L, B: ph, LDB: L,
			C: off(dqkv, 2*C+h*dh), LDC: L, StrideA: lo, StrideB: ll, StrideC: ld, Batch: g.seqs}); err != nil {
			return err
		}
		// dP = dO V^T
		if err := d.Gemm(cuda.Gemm{TransA: true, M: L, N: L, K: dh, Alpha: 1, A: do, LDA: L, B: off(qkv, 2*C+h*dh), LDB: L,
			C: ds, LDC: L, StrideA: lo, StrideB: ld, StrideC: ll, Batch: g.seqs}); err != nil {
			return err
		}
		if err := s.k.softmaxRowsBackward(ds, ds, ph, int64(g.seqs)*int64(L), L, g.scale()); err != nil {
			return err
		}
		// dQ^T = K^T dS^T
		if err := d.Gemm(cuda.Gemm{TransB: true, M: dh, N: L, K: L, Alpha: 1, A: off(qkv, C+h*dh), LDA: L, B: ds, LDB: L,
			C: off(dqkv, h*dh), LDC: L, StrideA: ld, StrideB: ll, StrideC: ld, Batch: g.seqs}); err != nil {
			return err
		}
		// dK^T = Q^T dS
		if err := d.Gemm(cuda.Gemm{M: dh, N: L, K: L, Alpha: 1, A: off(qkv, h*dh), LDA: L, B: ds, LDB: L,
			C: off(dqkv, C+h*dh), LDC: L, StrideA: ld, StrideB: ll, StrideC: ld, Batch: g.seqs}); err != nil {
			return err
		}
	}
	return nil
}
