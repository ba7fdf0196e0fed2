package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lastAxis splits a shape into rows (product of the leading axes) and the
// last axis.
func lastAxis(s tensor.Shape) (rows, d int) {
	if len(s) == 0 {
		return 0, 0
	}
	rows = 1
	for _, v := range s[:len(s)-1] {
		rows *= v
	}
	return rows, s[len(s)-1]
}

// LayerNorm adds layer normalisation over the last axis of x (..., D) with
// gamma, beta (D).
func (g *Graph) LayerNorm(x, gamma, beta *G.Node, eps float32) (*G.Node, error) {
	xs := x.Shape()
	m, d := lastAxis(xs)
	s := LayerNormShape{M: m, D: d, Eps: eps}
	if len(xs) < 2 {
		return nil, fmt.Errorf("nn: layer norm: want an (..., D) input of rank >= 2, got %v", xs)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if gamma.Shape().TotalSize() != d || beta.Shape().TotalSize() != d {
		return nil, fmt.Errorf("nn: layer norm: gamma %v / beta %v, want (%d)", gamma.Shape(), beta.Shape(), d)
	}
	return g.add(&lnK{s: s, shape: xs.Clone()}, x, gamma, beta)
}

// GEGLU adds the gated GELU a * GELU(gate) of x (..., 2F) = [a | gate],
// giving (..., F).
func (g *Graph) GEGLU(x *G.Node) (*G.Node, error) {
	xs := x.Shape()
	m, d := lastAxis(xs)
	if len(xs) < 2 || d%2 != 0 || m <= 0 {
		return nil, fmt.Errorf("nn: geglu: want an (..., 2F) input of rank >= 2, got %v", xs)
	}
	out := xs.Clone()
	out[len(out)-1] = d / 2
	return g.add(&gegluK{s: GEGLUShape{M: m, F: d / 2}, inShape: xs.Clone(), shape: out}, x)
}

// SeqAttention adds multi-head attention of queries q (N, Lq, C) over keys
// k and values v (N, Lk, C): self-attention when all three come from one
// sequence, cross-attention when k and v come from a context. causal masks
// later keys (needs Lq == Lk).
func (g *Graph) SeqAttention(q, k, v *G.Node, heads int, causal bool) (*G.Node, error) {
	qs, ks, vs := q.Shape(), k.Shape(), v.Shape()
	if len(qs) != 3 || len(ks) != 3 || !ks.Eq(vs) || ks[0] != qs[0] || ks[2] != qs[2] {
		return nil, fmt.Errorf("nn: sequence attention: q %v, k %v, v %v do not fit (want (N, Lq, C), (N, Lk, C), (N, Lk, C))", qs, ks, vs)
	}
	s := SeqAttentionShape{N: qs[0], Lq: qs[1], Lk: ks[1], C: qs[2], Heads: heads, Causal: causal}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return g.add(&seqAttnK{s: s, qShape: qs.Clone(), kShape: ks.Clone()}, q, k, v)
}

// SwapAxes adds the exchange of the middle axes of x viewed as (A, X, Y, D);
// the result has shape out (whose size must match).
func (g *Graph) SwapAxes(x *G.Node, s SwapShape, out ...int) (*G.Node, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	os := tensor.Shape(out)
	if x.Shape().TotalSize() != s.Len() || os.TotalSize() != s.Len() {
		return nil, fmt.Errorf("nn: swap axes %+v: input %v / output %v sizes differ", s, x.Shape(), os)
	}
	return g.add(&swapK{s: s, shape: os.Clone(), back: x.Shape().Clone()}, x)
}

// SinusoidalEmbedding adds diffusers' timestep projection (N, s.Dim) of
// t (N).
func (g *Graph) SinusoidalEmbedding(t *G.Node, s SinusoidalShape) (*G.Node, error) {
	ts := t.Shape()
	if len(ts) != 1 || s.Dim <= 0 {
		return nil, fmt.Errorf("nn: sinusoidal embedding: want a (N) input and dim > 0, got %v, %d", ts, s.Dim)
	}
	s.N = ts[0]
	return apply(&sinEmbedK{s: s}, []bool{false}, t)
}
