package nn

import "fmt"

// TemporalConvShape describes a kernel-3, padding-1 convolution over the
// frame axis of a (B, T, C, P) activation, P = H*W, with a (K, C, 3) weight
// and a (K) bias: y[b,t,k,p] = bias[k] + sum_{c,j} w[k,c,j] * x[b,t+j-1,c,p].
// Frames outside [0, T) are zero.
type TemporalConvShape struct {
	B, T, C, K, P int
}

// TemporalKernel is the kernel length over frames.
const TemporalKernel = 3

func (s TemporalConvShape) InLen() int     { return s.B * s.T * s.C * s.P }
func (s TemporalConvShape) OutLen() int    { return s.B * s.T * s.K * s.P }
func (s TemporalConvShape) WeightLen() int { return s.K * s.C * TemporalKernel }

// FLOPs counts taps that fall inside the clip.
func (s TemporalConvShape) FLOPs() int64 {
	taps := int64(TemporalKernel*s.T - 2)
	if s.T == 1 {
		taps = 1
	}
	return 2 * int64(s.B) * taps * int64(s.K) * int64(s.C) * int64(s.P)
}

// Validate reports an impossible shape.
func (s TemporalConvShape) Validate() error {
	if s.B <= 0 || s.T <= 0 || s.C <= 0 || s.K <= 0 || s.P <= 0 {
		return fmt.Errorf("nn: temporal conv: bad shape %+v", s)
	}
	return nil
}

// splitTaps copies w (K, C, 3) into three contiguous (K, C) matrices.
func splitTaps(w []float32, s TemporalConvShape) [TemporalKernel][]float32 {
	var taps [TemporalKernel][]float32
	for j := range taps {
		m := make([]float32, s.K*s.C)
		for k := 0; k < s.K; k++ {
			for c := 0; c < s.C; c++ {
				m[k*s.C+c] = w[(k*s.C+c)*TemporalKernel+j]
			}
		}
		taps[j] = m
	}
	return taps
}

// TemporalConvForward computes y; b may be nil. y is overwritten.
func TemporalConvForward(y, x, w, b []float32, s TemporalConvShape) {
	taps := splitTaps(w, s)
	in, out := s.C*s.P, s.K*s.P
	parallelFor(s.B*s.T, func(_, bt int) {
		bi, t := bt/s.T, bt%s.T
		yf := y[bt*out : (bt+1)*out]
		if b != nil {
			for k := 0; k < s.K; k++ {
				row := yf[k*s.P : (k+1)*s.P]
				for i := range row {
					row[i] = b[k]
				}
			}
		} else {
			zero(yf)
		}
		for j := 0; j < TemporalKernel; j++ {
			ts := t + j - 1
			if ts < 0 || ts >= s.T {
				continue
			}
			xf := x[(bi*s.T+ts)*in : (bi*s.T+ts+1)*in]
			Sgemm(false, false, s.K, s.P, s.C, 1, taps[j], s.C, xf, s.P, 1, yf, s.P)
		}
	})
}

// TemporalConvBackwardData computes dx from dy and w. dx is overwritten.
func TemporalConvBackwardData(dx, dy, w []float32, s TemporalConvShape) {
	taps := splitTaps(w, s)
	in, out := s.C*s.P, s.K*s.P
	parallelFor(s.B*s.T, func(_, bt int) {
		bi, t := bt/s.T, bt%s.T
		dxf := dx[bt*in : (bt+1)*in]
		zero(dxf)
		// x[t] feeds y[t-j+1] through tap j
		for j := 0; j < TemporalKernel; j++ {
			to := t - j + 1
			if to < 0 || to >= s.T {
				continue
			}
			dyf := dy[(bi*s.T+to)*out : (bi*s.T+to+1)*out]
			Sgemm(true, false, s.C, s.P, s.K, 1, taps[j], s.C, dyf, s.P, 1, dxf, s.P)
		}
	})
}

// TemporalConvBackwardFilter computes dw (and db when not nil). Both are
// overwritten.
func TemporalConvBackwardFilter(dw, db, dy, x []float32, s TemporalConvShape) {
	in, out := s.C*s.P, s.K*s.P
	// one (K, C) accumulator per tap, parallel over taps
	var acc [TemporalKernel][]float32
	parallelFor(TemporalKernel, func(_, j int) {
		m := make([]float32, s.K*s.C)
		for bi := 0; bi < s.B; bi++ {
			for t := 0; t < s.T; t++ {
				ts := t + j - 1
				if ts < 0 || ts >= s.T {
					continue
				}
				dyf := dy[(bi*s.T+t)*out : (bi*s.T+t+1)*out]
				xf := x[(bi*s.T+ts)*in : (bi*s.T+ts+1)*in]
				Sgemm(false, true, s.K, s.C, s.P, 1, dyf, s.P, xf, s.P, 1, m, s.C)
			}
		}
		acc[j] = m
	})
	for k := 0; k < s.K; k++ {
		for c := 0; c < s.C; c++ {
			for j := 0; j < TemporalKernel; j++ {
				dw[(k*s.C+c)*TemporalKernel+j] = acc[j][k*s.C+c]
			}
		}
	}
	if db != nil {
		zero(db)
		for f := 0; f < s.B*s.T; f++ {
			dyf := dy[f*out : (f+1)*out]
			for k := 0; k < s.K; k++ {
				var a float32
				for _, v := range dyf[k*s.P : (k+1)*s.P] {
					a += v
				}
				db[k] += a
			}
		}
	}
}
