package nn

import (
	"fmt"
	"math"
)

// GroupNormShape describes group normalisation of an (N, C, P) activation,
// P = H*W, over Groups groups of C/Groups channels, with a (C) scale gamma
// and (C) shift beta. Statistics are accumulated in float64, so groups of
// any size are exact to float32 precision.
type GroupNormShape struct {
	N, C, P, Groups int
	Eps             float32
}

// DefaultGroupNormEps is the epsilon the model uses (PyTorch's default).
const DefaultGroupNormEps = 1e-5

func (s GroupNormShape) Len() int { return s.N * s.C * s.P }

// Validate reports an impossible shape.
func (s GroupNormShape) Validate() error {
	if s.N <= 0 || s.C <= 0 || s.P <= 0 || s.Groups <= 0 || s.C%s.Groups != 0 || s.Eps <= 0 {
		return fmt.Errorf("nn: group norm: bad shape %+v (C must be a multiple of Groups, Eps > 0)", s)
	}
	return nil
}

// groupStats returns mean and 1/sqrt(var+eps) of one group.
func groupStats(xg []float32, eps float32) (mean, rstd float64) {
	var sum, sq float64
	for _, v := range xg {
		sum += float64(v)
	}
	mean = sum / float64(len(xg))
	for _, v := range xg {
		d := float64(v) - mean
		sq += d * d
	}
	variance := sq / float64(len(xg))
	return mean, 1 / math.Sqrt(variance+float64(eps))
}

// GroupNormForward computes y = (x-mean)/std * gamma + beta. y is overwritten.
func GroupNormForward(y, x, gamma, beta []float32, s GroupNormShape) {
	cg := s.C / s.Groups
	gl := cg * s.P
	parallelFor(s.N*s.Groups, func(_, ng int) {
		n, g := ng/s.Groups, ng%s.Groups
		off := n*s.C*s.P + g*gl
		mean, rstd := groupStats(x[off:off+gl], s.Eps)
		for ci := 0; ci < cg; ci++ {
			c := g*cg + ci
			// coefficients stay in float64: rounding them to float32 would
			// shift every output of the group coherently
			a := rstd * float64(gamma[c])
			b := float64(beta[c]) - mean*a
			xs := x[off+ci*s.P : off+(ci+1)*s.P]
			ys := y[off+ci*s.P : off+(ci+1)*s.P]
			for i, v := range xs {
				ys[i] = float32(float64(v)*a + b)
			}
		}
	})
}

// GroupNormBackwardData computes dx from dy, x and gamma. dx is overwritten.
func GroupNormBackwardData(dx, dy, x, gamma []float32, s GroupNormShape) {
	cg := s.C / s.Groups
	gl := cg * s.P
	parallelFor(s.N*s.Groups, func(_, ng int) {
		n, g := ng/s.Groups, ng%s.Groups
		off := n*s.C*s.P + g*gl
		mean, rstd := groupStats(x[off:off+gl], s.Eps)
		// g_i = dy_i*gamma_c; dx = rstd*(g - mean(g) - xhat*mean(g*xhat))
		var sg, sgx float64
		for ci := 0; ci < cg; ci++ {
			c := g*cg + ci
			gm := float64(gamma[c])
			xs := x[off+ci*s.P : off+(ci+1)*s.P]
			ds := dy[off+ci*s.P : off+(ci+1)*s.P]
			for i, v := range xs {
				gv := float64(ds[i]) * gm
				sg += gv
				sgx += gv * (float64(v) - mean) * rstd
			}
		}
		mg := sg / float64(gl)
		mgx := sgx / float64(gl)
		for ci := 0; ci < cg; ci++ {
			c := g*cg + ci
			gm := float64(gamma[c])
			xs := x[off+ci*s.P : off+(ci+1)*s.P]
			ds := dy[off+ci*s.P : off+(ci+1)*s.P]
			dxs := dx[off+ci*s.P : off+(ci+1)*s.P]
			for i, v := range xs {
				xhat := (float64(v) - mean) * rstd
				dxs[i] = float32(rstd * (float64(ds[i])*gm - mg - xhat*mgx))
			}
		}
	})
}

// GroupNormBackwardParams computes dgamma and dbeta (either may be nil).
// Both are overwritten.
func GroupNormBackwardParams(dgamma, dbeta, dy, x []float32, s GroupNormShape) {
	cg := s.C / s.Groups
	gl := cg * s.P
	dg := make([]float64, s.C)
	db := make([]float64, s.C)
	for n := 0; n < s.N; n++ {
		for g := 0; g < s.Groups; g++ {
			off := n*s.C*s.P + g*gl
			mean, rstd := groupStats(x[off:off+gl], s.Eps)
			for ci := 0; ci < cg; ci++ {
				c := g*cg + ci
				xs := x[off+ci*s.P : off+(ci+1)*s.P]
				ds := dy[off+ci*s.P : off+(ci+1)*s.P]
				var a, b float64
				for i, v := range xs {
					a += float64(ds[i]) * (float64(v) - mean) * rstd
					b += float64(ds[i])
				}
				dg[c] += a
				db[c] += b
			}
		}
	}
	for c := 0; c < s.C; c++ {
		if dgamma != nil {
			dgamma[c] = float32(dg[c])
		}
		if dbeta != nil {
			dbeta[c] = float32(db[c])
		}
	}
}
