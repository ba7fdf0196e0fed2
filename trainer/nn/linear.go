package nn

import "fmt"

// LinearShape describes y = x W^T + b for x (N, In), W (Out, In), b (Out).
type LinearShape struct {
	N, In, Out int
}

// Validate reports an impossible shape.
func (s LinearShape) Validate() error {
	if s.N <= 0 || s.In <= 0 || s.Out <= 0 {
		return fmt.Errorf("nn: linear: bad shape %+v", s)
	}
	return nil
}

// FLOPs of the forward pass.
func (s LinearShape) FLOPs() int64 { return 2 * int64(s.N) * int64(s.In) * int64(s.Out) }

// LinearForward computes y; b may be nil. y is overwritten.
func LinearForward(y, x, w, b []float32, s LinearShape) {
	Sgemm(false, true, s.N, s.Out, s.In, 1, x, s.In, w, s.In, 0, y, s.Out)
	if b != nil {
		for n := 0; n < s.N; n++ {
			row := y[n*s.Out : (n+1)*s.Out]
			for o := range row {
				row[o] += b[o]
			}
		}
	}
}

// LinearBackwardData computes dx = dy W. dx is overwritten.
func LinearBackwardData(dx, dy, w []float32, s LinearShape) {
	Sgemm(false, false, s.N, s.In, s.Out, 1, dy, s.Out, w, s.In, 0, dx, s.In)
}

// LinearBackwardParams computes dw = dy^T x and db = sum_n dy (either may be
// nil). Both are overwritten.
func LinearBackwardParams(dw, db, dy, x []float32, s LinearShape) {
	if dw != nil {
		Sgemm(true, false, s.Out, s.In, s.N, 1, dy, s.Out, x, s.In, 0, dw, s.In)
	}
	if db != nil {
		zero(db)
		for n := 0; n < s.N; n++ {
			for o, v := range dy[n*s.Out : (n+1)*s.Out] {
				db[o] += v
			}
		}
	}
}
