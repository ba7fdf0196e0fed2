package nn

import (
	"fmt"
	"math"
)

// SeqAttentionShape describes multi-head scaled dot-product attention over
// token sequences laid out token-major: queries q (N, Lq, C), keys k and
// values v (N, Lk, C), output (N, Lq, C). Head h uses columns
// [h*C/Heads, (h+1)*C/Heads) of each. Self-attention passes the same
// sequence length for q and k; cross-attention takes k and v from a
// context (the text embedding, Lk = 77). Causal masks key j > query i
// (a text encoder's self-attention; needs Lq == Lk). Scores are scaled by
// 1/sqrt(C/Heads).
type SeqAttentionShape struct {
	N, Lq, Lk, C, Heads int
	Causal              bool
}

// Validate reports an impossible shape.
func (s SeqAttentionShape) Validate() error {
	if s.N <= 0 || s.Lq <= 0 || s.Lk <= 0 || s.C <= 0 || s.Heads <= 0 || s.C%s.Heads != 0 {
		return fmt.Errorf("nn: sequence attention: bad shape %+v (C must be a multiple of Heads)", s)
	}
	if s.Causal && s.Lq != s.Lk {
		return fmt.Errorf("nn: sequence attention: a causal mask needs Lq == Lk, got %+v", s)
	}
	return nil
}

func (s SeqAttentionShape) QLen() int  { return s.N * s.Lq * s.C }
func (s SeqAttentionShape) KVLen() int { return s.N * s.Lk * s.C }

// FLOPs of the forward pass (QK^T and PV).
func (s SeqAttentionShape) FLOPs() int64 {
	return 4 * int64(s.N) * int64(s.Lq) * int64(s.Lk) * int64(s.C)
}

type seqScratch struct{ p, dp []float32 }

// seqProbs computes the softmaxed scores P (Lq, Lk) of head h of one
// sequence: q, k start at the sequence's first token.
func seqProbs(p, q, k []float32, s SeqAttentionShape, h int) {
	dh := s.C / s.Heads
	scale := float32(1 / math.Sqrt(float64(dh)))
	Sgemm(false, true, s.Lq, s.Lk, dh, scale, q[h*dh:], s.C, k[h*dh:], s.C, 0, p, s.Lk)
	for i := 0; i < s.Lq; i++ {
		row := p[i*s.Lk : (i+1)*s.Lk]
		n := s.Lk
		if s.Causal {
			n = i + 1
		}
		m := row[0]
		for _, v := range row[:n] {
			m = max(m, v)
		}
		var sum float64
		for j, v := range row[:n] {
			e := math.Exp(float64(v - m))
			row[j] = float32(e)
			sum += e
		}
		inv := float32(1 / sum)
		for j := range row[:n] {
			row[j] *= inv
		}
		zero(row[n:])
	}
}

// SeqAttentionForward computes out from q, k, v. out is overwritten.
func SeqAttentionForward(out, q, k, v []float32, s SeqAttentionShape) {
	dh := s.C / s.Heads
	ws := make([]seqScratch, workers())
	parallelFor(s.N*s.Heads, func(w, nh int) {
		n, h := nh/s.Heads, nh%s.Heads
		qn, kn, vn := q[n*s.Lq*s.C:], k[n*s.Lk*s.C:], v[n*s.Lk*s.C:]
		p := scratch(&ws[w].p, s.Lq*s.Lk)
		seqProbs(p, qn, kn, s, h)
		Sgemm(false, false, s.Lq, dh, s.Lk, 1, p, s.Lk, vn[h*dh:], s.C, 0, out[n*s.Lq*s.C+h*dh:], s.C)
	})
}

// SeqAttentionBackward computes the gradients dq, dk, dv (each may be nil:
// not computed) from dout and the forward inputs. Those not nil are
// overwritten.
func SeqAttentionBackward(dq, dk, dv, dout, q, k, v []float32, s SeqAttentionShape) {
	dh := s.C / s.Heads
	scale := float32(1 / math.Sqrt(float64(dh)))
	ws := make([]seqScratch, workers())
	parallelFor(s.N*s.Heads, func(w, nh int) {
		n, h := nh/s.Heads, nh%s.Heads
		qo, ko := n*s.Lq*s.C+h*dh, n*s.Lk*s.C+h*dh
		p := scratch(&ws[w].p, s.Lq*s.Lk)
		seqProbs(p, q[n*s.Lq*s.C:], k[n*s.Lk*s.C:], s, h)
		do := dout[qo:]
		if dv != nil {
			// dV = P^T dO
			Sgemm(true, false, s.Lk, dh, s.Lq, 1, p, s.Lk, do, s.C, 0, dv[ko:], s.C)
		}
		if dq == nil && dk == nil {
			return
		}
		// dP = dO V^T, then dS = P * (dP - rowsum(dP*P)) * scale
		dp := scratch(&ws[w].dp, s.Lq*s.Lk)
		Sgemm(false, true, s.Lq, s.Lk, dh, 1, do, s.C, v[ko:], s.C, 0, dp, s.Lk)
		for i := 0; i < s.Lq; i++ {
			pr, dr := p[i*s.Lk:(i+1)*s.Lk], dp[i*s.Lk:(i+1)*s.Lk]
			var d64 float64
			for j := range pr {
				d64 += float64(pr[j]) * float64(dr[j])
			}
			d := float32(d64)
			for j := range dr {
				dr[j] = pr[j] * (dr[j] - d) * scale
			}
		}
		if dq != nil {
			// dQ = dS K
			Sgemm(false, false, s.Lq, dh, s.Lk, 1, dp, s.Lk, k[ko:], s.C, 0, dq[qo:], s.C)
		}
		if dk != nil {
			// dK = dS^T Q
			Sgemm(true, false, s.Lk, dh, s.Lq, 1, dp, s.Lk, q[qo:], s.C, 0, dk[ko:], s.C)
		}
	})
}

// SwapShape describes the exchange of the two middle axes of an
// (A, X, Y, D) tensor, giving (A, Y, X, D): frames (N, C, P) to tokens
// (N, P, C) is {A: N, X: C, Y: P, D: 1}; tokens of a clip (B, T, P, C) to
// sequences over frames (B, P, T, C) is {A: B, X: T, Y: P, D: C}.
type SwapShape struct {
	A, X, Y, D int
}

func (s SwapShape) Len() int { return s.A * s.X * s.Y * s.D }

// Inverse is the swap that undoes s.
func (s SwapShape) Inverse() SwapShape { return SwapShape{A: s.A, X: s.Y, Y: s.X, D: s.D} }

// Validate reports an impossible shape.
func (s SwapShape) Validate() error {
	if s.A <= 0 || s.X <= 0 || s.Y <= 0 || s.D <= 0 {
		return fmt.Errorf("nn: swap axes: bad shape %+v", s)
	}
	return nil
}

// SwapAxesForward writes y[a,y,x,d] = x[a,x,y,d]. y is overwritten (it
// must not alias x). The backward pass is SwapAxesForward with s.Inverse().
func SwapAxesForward(y, x []float32, s SwapShape) {
	parallelFor(s.A*s.X, func(_, ax int) {
		a, xi := ax/s.X, ax%s.X
		src := x[(a*s.X+xi)*s.Y*s.D:]
		for yi := 0; yi < s.Y; yi++ {
			copy(y[((a*s.Y+yi)*s.X+xi)*s.D:][:s.D], src[yi*s.D:(yi+1)*s.D])
		}
	})
}
