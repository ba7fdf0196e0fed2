package nn

import (
	"fmt"
	"math"
)

// LayerNormShape describes layer normalisation of M rows of D values (the
// last axis of a token sequence (N, L, D) or a vector (N, D)) with a (D)
// scale gamma and (D) shift beta. Statistics are accumulated in float64.
type LayerNormShape struct {
	M, D int
	Eps  float32
}

// DefaultLayerNormEps is PyTorch's nn.LayerNorm default.
const DefaultLayerNormEps = 1e-5

func (s LayerNormShape) Len() int { return s.M * s.D }

// Validate reports an impossible shape.
func (s LayerNormShape) Validate() error {
	if s.M <= 0 || s.D <= 0 || s.Eps <= 0 {
		return fmt.Errorf("nn: layer norm: bad shape %+v (Eps > 0)", s)
	}
	return nil
}

// LayerNormForward computes y = (x-mean)/sqrt(var+eps) * gamma + beta per
// row. y is overwritten.
func LayerNormForward(y, x, gamma, beta []float32, s LayerNormShape) {
	parallelRows(s.M, s.D, func(m int) {
		xr, yr := x[m*s.D:(m+1)*s.D], y[m*s.D:(m+1)*s.D]
		mean, rstd := groupStats(xr, s.Eps)
		for i, v := range xr {
			yr[i] = float32((float64(v)-mean)*rstd*float64(gamma[i]) + float64(beta[i]))
		}
	})
}

// LayerNormBackwardData computes dx from dy, x and gamma. dx is overwritten.
func LayerNormBackwardData(dx, dy, x, gamma []float32, s LayerNormShape) {
	parallelRows(s.M, s.D, func(m int) {
		xr, dyr, dxr := x[m*s.D:(m+1)*s.D], dy[m*s.D:(m+1)*s.D], dx[m*s.D:(m+1)*s.D]
		mean, rstd := groupStats(xr, s.Eps)
		var sg, sgx float64
		for i, v := range xr {
			g := float64(dyr[i]) * float64(gamma[i])
			sg += g
			sgx += g * (float64(v) - mean) * rstd
		}
		mg, mgx := sg/float64(s.D), sgx/float64(s.D)
		for i, v := range xr {
			xhat := (float64(v) - mean) * rstd
			dxr[i] = float32(rstd * (float64(dyr[i])*float64(gamma[i]) - mg - xhat*mgx))
		}
	})
}

// LayerNormBackwardParams computes dgamma = sum_m dy*xhat and dbeta =
// sum_m dy (either may be nil). Both are overwritten.
func LayerNormBackwardParams(dgamma, dbeta, dy, x []float32, s LayerNormShape) {
	dg := make([]float64, s.D)
	db := make([]float64, s.D)
	for m := 0; m < s.M; m++ {
		xr, dyr := x[m*s.D:(m+1)*s.D], dy[m*s.D:(m+1)*s.D]
		mean, rstd := groupStats(xr, s.Eps)
		for i, v := range xr {
			dg[i] += float64(dyr[i]) * (float64(v) - mean) * rstd
			db[i] += float64(dyr[i])
		}
	}
	for i := 0; i < s.D; i++ {
		if dgamma != nil {
			dgamma[i] = float32(dg[i])
		}
		if dbeta != nil {
			dbeta[i] = float32(db[i])
		}
	}
}

// parallelRows runs body over m rows of d values in chunks large enough to
// be worth a goroutine.
func parallelRows(m, d int, body func(row int)) {
	per := max(1, (1<<13)/max(1, d))
	chunks := (m + per - 1) / per
	parallelFor(chunks, func(_, c int) {
		for r := c * per; r < min(m, (c+1)*per); r++ {
			body(r)
		}
	})
}

// GELU is x * Phi(x) with the exact (erf) normal CDF, PyTorch's default.
func GELU(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// geluGrad is d GELU / dx = Phi(x) + x phi(x).
func geluGrad(x float64) float64 {
	return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
}

// GEGLUShape describes the gated GELU of diffusers' FeedForward: an input
// (M, 2F) whose first F columns are the values a and last F the gate g;
// the output (M, F) is a * GELU(g).
type GEGLUShape struct {
	M, F int
}

func (s GEGLUShape) InLen() int  { return s.M * 2 * s.F }
func (s GEGLUShape) OutLen() int { return s.M * s.F }

// GEGLUForward computes y. y is overwritten.
func GEGLUForward(y, x []float32, s GEGLUShape) {
	parallelRows(s.M, 2*s.F, func(m int) {
		a, g := x[m*2*s.F:m*2*s.F+s.F], x[m*2*s.F+s.F:(m+1)*2*s.F]
		yr := y[m*s.F : (m+1)*s.F]
		for i := range yr {
			yr[i] = float32(float64(a[i]) * GELU(float64(g[i])))
		}
	})
}

// GEGLUBackward computes dx (M, 2F) from dy (M, F) and x. dx is overwritten.
func GEGLUBackward(dx, dy, x []float32, s GEGLUShape) {
	parallelRows(s.M, 2*s.F, func(m int) {
		a, g := x[m*2*s.F:m*2*s.F+s.F], x[m*2*s.F+s.F:(m+1)*2*s.F]
		da, dg := dx[m*2*s.F:m*2*s.F+s.F], dx[m*2*s.F+s.F:(m+1)*2*s.F]
		dyr := dy[m*s.F : (m+1)*s.F]
		for i := range dyr {
			gv := float64(g[i])
			da[i] = float32(float64(dyr[i]) * GELU(gv))
			dg[i] = float32(float64(dyr[i]) * float64(a[i]) * geluGrad(gv))
		}
	})
}
