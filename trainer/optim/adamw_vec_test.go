package optim

import (
	"math"
	"math/rand/v2"
	"testing"
)

// vecCase is one span's inputs: gradient, weights and moments, with
// values across float32's range (tiny, huge, zero, negative zero).
func vecCase(r *rand.Rand, n int) (g, w, m, v []float32) {
	pick := func() float32 {
		switch r.IntN(8) {
		case 0:
			return 0
		case 1:
			return float32(math.Copysign(0, -1))
		case 2:
			return float32(r.NormFloat64() * 1e-38) // subnormal-ish
		case 3:
			return float32(r.NormFloat64() * 1e15)
		default:
			return float32(r.NormFloat64())
		}
	}
	for range n {
		g, w, m = append(g, pick()), append(w, pick()), append(m, pick())
		v = append(v, float32(math.Abs(float64(pick()))))
	}
	return g, w, m, v
}

// TestVecAdamWBitIdentical runs the span updates with the vector kernel
// and with the scalar code and wants the same bits: in place, from saved
// values with a staging copy, and speculated, over lengths that are and
// are not multiples of 8, clipped and not, with and without decay.
func TestVecAdamWBitIdentical(t *testing.T) {
	if !haveVecAdamW {
		t.Skip("no vector AdamW kernel on this CPU")
	}
	r := rand.New(rand.NewPCG(1, 2))
	o := &AdamW{cfg: DefaultConfig()}
	for _, n := range []int{1, 7, 8, 9, 64, 1003} {
		for _, scale := range []float32{1, 0.37} {
			for _, noDecay := range []bool{false, true} {
				g, w, m, v := vecCase(r, n)
				st := Stats{Step: 1 + r.IntN(1000), LR: 1e-3}
				h := o.hyper(st)
				run := func(vec bool) (outs [][]float32) {
					defer func(on bool) { haveVecAdamW = on }(haveVecAdamW)
					haveVecAdamW = vec
					cp := func(x []float32) []float32 { return append([]float32(nil), x...) }
					sp := span{0, 0, n}
					// in place
					o.params = []*Param{{Name: "p", Data: cp(w), NoDecay: noDecay}}
					o.m, o.v = [][]float32{cp(m)}, [][]float32{cp(v)}
					o.updateSpanFrom(h, sp, g, scale, nil, nil, nil, nil)
					outs = append(outs, o.params[0].Data, o.m[0], o.v[0])
					// from saved values, staged
					o.params[0].Data, o.m[0], o.v[0] = make([]float32, n), make([]float32, n), make([]float32, n)
					stage := make([]float32, n)
					o.updateSpanFrom(h, sp, g, scale, w, m, v, stage)
					outs = append(outs, o.params[0].Data, o.m[0], o.v[0], stage)
					// speculated
					o.params[0].Data, o.m[0], o.v[0] = cp(w), cp(m), cp(v)
					sw, sm, sv, stage := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
					o.speculateSpan(h, sp, g, stage, sw, sm, sv)
					return append(outs, o.params[0].Data, o.m[0], o.v[0], sw, sm, sv, stage)
				}
				want, got := run(false), run(true)
				for k := range want {
					for j := range want[k] {
						if math.Float32bits(want[k][j]) != math.Float32bits(got[k][j]) {
							t.Fatalf("n=%d scale=%g noDecay=%v output %d[%d]: vector %v (%08x), scalar %v (%08x)",
								n, scale, noDecay, k, j, got[k][j], math.Float32bits(got[k][j]), want[k][j], math.Float32bits(want[k][j]))
						}
					}
				}
			}
		}
	}
}
