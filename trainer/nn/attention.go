package nn

import (
	"fmt"
	"math"
)

// AttentionShape describes multi-head self-attention over a clip batch
// activation laid out as (B*T, C, P), P = H*W. The input is the packed
// projection qkv (B*T, 3C, P): channels [0,C) are queries, [C,2C) keys,
// [2C,3C) values, and head h uses channels [h*C/Heads, (h+1)*C/Heads) of
// each. The output is (B*T, C, P).
//
// Spatial attention (Temporal false) attends over the P positions of each
// frame; temporal attention (Temporal true) attends over the T frames at
// each position of each clip. Scores are scaled by 1/sqrt(C/Heads).
type AttentionShape struct {
	B, T, C, P, Heads int
	Temporal          bool
}

// Validate reports an impossible shape.
func (s AttentionShape) Validate() error {
	if s.B <= 0 || s.T <= 0 || s.C <= 0 || s.P <= 0 || s.Heads <= 0 || s.C%s.Heads != 0 {
		return fmt.Errorf("nn: attention: bad shape %+v (C must be a multiple of Heads)", s)
	}
	return nil
}

func (s AttentionShape) InLen() int  { return s.B * s.T * 3 * s.C * s.P }
func (s AttentionShape) OutLen() int { return s.B * s.T * s.C * s.P }

// seqLen is the number of tokens per sequence; seqs the number of sequences.
func (s AttentionShape) seqLen() int {
	if s.Temporal {
		return s.T
	}
	return s.P
}

func (s AttentionShape) seqs() int {
	if s.Temporal {
		return s.B * s.P
	}
	return s.B * s.T
}

// FLOPs of the forward pass (QK^T and PV).
func (s AttentionShape) FLOPs() int64 {
	l := int64(s.seqLen())
	return 4 * int64(s.seqs()) * l * l * int64(s.C)
}

// attnScratch is per-worker scratch space.
type attnScratch struct {
	qkv, out, dout, dqkv, sc, dp []float32
}

// gather copies the temporal sequence at clip b, position p of src
// (B*T, ch, P) into dst (ch, T), channel-major like a spatial frame.
func gatherSeq(dst, src []float32, s AttentionShape, ch, b, p int) {
	for t := 0; t < s.T; t++ {
		base := (b*s.T+t)*ch*s.P + p
		for c := 0; c < ch; c++ {
			dst[c*s.T+t] = src[base+c*s.P]
		}
	}
}

func scatterSeq(dst, src []float32, s AttentionShape, ch, b, p int) {
	for t := 0; t < s.T; t++ {
		base := (b*s.T+t)*ch*s.P + p
		for c := 0; c < ch; c++ {
			dst[base+c*s.P] = src[c*s.T+t]
		}
	}
}

// scores computes the row-softmaxed attention matrix of head h into sc
// (L, L) for a channel-major qkv (3C, ld).
func scores(sc, qkv []float32, L, ld, C, dh, h int, scale float32) {
	qt := qkv[h*dh*ld:]
	kt := qkv[(C+h*dh)*ld:]
	Sgemm(true, false, L, L, dh, scale, qt, ld, kt, ld, 0, sc, L)
	for i := 0; i < L; i++ {
		row := sc[i*L : (i+1)*L]
		m := row[0]
		for _, v := range row {
			if v > m {
				m = v
			}
		}
		var sum float64
		for j, v := range row {
			e := math.Exp(float64(v - m))
			row[j] = float32(e)
			sum += e
		}
		inv := float32(1 / sum)
		for j := range row {
			row[j] *= inv
		}
	}
}

// attendSeq computes out (C, ld) from qkv (3C, ld) for one sequence of L
// tokens.
func attendSeq(out, qkv []float32, L, ld, C, heads int, ws *attnScratch) {
	dh := C / heads
	scale := float32(1 / math.Sqrt(float64(dh)))
	sc := scratch(&ws.sc, L*L)
	for h := 0; h < heads; h++ {
		scores(sc, qkv, L, ld, C, dh, h, scale)
		vt := qkv[(2*C+h*dh)*ld:]
		// O^T (dh, L) = V^T (dh, L) P^T
		Sgemm(false, true, dh, L, L, 1, vt, ld, sc, L, 0, out[h*dh*ld:], ld)
	}
}

// attendSeqBackward computes dqkv (3C, ld) from dout (C, ld) and qkv.
func attendSeqBackward(dqkv, dout, qkv []float32, L, ld, C, heads int, ws *attnScratch) {
	dh := C / heads
	scale := float32(1 / math.Sqrt(float64(dh)))
	sc := scratch(&ws.sc, L*L)
	dp := scratch(&ws.dp, L*L)
	for h := 0; h < heads; h++ {
		scores(sc, qkv, L, ld, C, dh, h, scale)
		qt := qkv[h*dh*ld:]
		kt := qkv[(C+h*dh)*ld:]
		vt := qkv[(2*C+h*dh)*ld:]
		dot := dout[h*dh*ld:]
		// dV^T = dO^T P
		Sgemm(false, false, dh, L, L, 1, dot, ld, sc, L, 0, dqkv[(2*C+h*dh)*ld:], ld)
		// dP = dO V^T = (dO^T)^T V^T
		Sgemm(true, false, L, L, dh, 1, dot, ld, vt, ld, 0, dp, L)
		// dS = P * (dP - rowsum(dP*P)) * scale
		for i := 0; i < L; i++ {
			pr := sc[i*L : (i+1)*L]
			dr := dp[i*L : (i+1)*L]
			var dot64 float64
			for j := range pr {
				dot64 += float64(pr[j]) * float64(dr[j])
			}
			d := float32(dot64)
			for j := range dr {
				dr[j] = pr[j] * (dr[j] - d) * scale
			}
		}
		// dQ^T = K^T dS^T ; dK^T = Q^T dS
		Sgemm(false, true, dh, L, L, 1, kt, ld, dp, L, 0, dqkv[h*dh*ld:], ld)
		Sgemm(false, false, dh, L, L, 1, qt, ld, dp, L, 0, dqkv[(C+h*dh)*ld:], ld)
	}
}

// AttentionForward computes out from qkv. out is overwritten.
func AttentionForward(out, qkv []float32, s AttentionShape) {
	nw := workers()
	ws := make([]attnScratch, nw)
	if !s.Temporal {
		parallelFor(s.B*s.T, func(w, f int) {
			attendSeq(out[f*s.C*s.P:(f+1)*s.C*s.P], qkv[f*3*s.C*s.P:(f+1)*3*s.C*s.P], s.P, s.P, s.C, s.Heads, &ws[w])
		})
		return
	}
	parallelFor(s.B*s.P, func(w, bp int) {
		b, p := bp/s.P, bp%s.P
		sc := &ws[w]
		q := scratch(&sc.qkv, 3*s.C*s.T)
		o := scratch(&sc.out, s.C*s.T)
		gatherSeq(q, qkv, s, 3*s.C, b, p)
		attendSeq(o, q, s.T, s.T, s.C, s.Heads, sc)
		scatterSeq(out, o, s, s.C, b, p)
	})
}

// AttentionBackward computes dqkv from dout and qkv. dqkv is overwritten.
func AttentionBackward(dqkv, dout, qkv []float32, s AttentionShape) {
	nw := workers()
	ws := make([]attnScratch, nw)
	if !s.Temporal {
		parallelFor(s.B*s.T, func(w, f int) {
			attendSeqBackward(dqkv[f*3*s.C*s.P:(f+1)*3*s.C*s.P], dout[f*s.C*s.P:(f+1)*s.C*s.P],
				qkv[f*3*s.C*s.P:(f+1)*3*s.C*s.P], s.P, s.P, s.C, s.Heads, &ws[w])
		})
		return
	}
	parallelFor(s.B*s.P, func(w, bp int) {
		b, p := bp/s.P, bp%s.P
		sc := &ws[w]
		q := scratch(&sc.qkv, 3*s.C*s.T)
		do := scratch(&sc.dout, s.C*s.T)
		dq := scratch(&sc.dqkv, 3*s.C*s.T)
		gatherSeq(q, qkv, s, 3*s.C, b, p)
		gatherSeq(do, dout, s, s.C, b, p)
		attendSeqBackward(dq, do, q, s.T, s.T, s.C, s.Heads, sc)
		scatterSeq(dqkv, dq, s, 3*s.C, b, p)
	})
}
