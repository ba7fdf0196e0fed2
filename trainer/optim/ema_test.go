package optim

import (
	"math"
	"testing"
)

func TestEMAUpdateAndSwap(t *testing.T) {
	p := &Param{Name: "w", Shape: []int{3}, Data: []float32{1, 2, 3}}
	big := &Param{Name: "big", Shape: []int{chunk + 5}, Data: make([]float32, chunk+5)} // spans two work chunks
	e, err := NewEMA(0.9, []*Param{p, big})
	if err != nil {
		t.Fatal(err)
	}
	// warm-up: step 1 decays by min(0.9, 2/11), step 100 by 0.9
	if d := e.DecayAt(1); math.Abs(d-2.0/11) > 1e-15 {
		t.Errorf("DecayAt(1) = %g, want 2/11", d)
	}
	if d := e.DecayAt(100); d != 0.9 {
		t.Errorf("DecayAt(100) = %g, want the cap 0.9", d)
	}
	want := []float64{1, 2, 3}
	for n := 1; n <= 30; n++ {
		for i := range p.Data {
			p.Data[i] = float32(n * (i + 1))
		}
		big.Data[chunk+4] = float32(n)
		e.Update(n)
		d := e.DecayAt(n)
		for i := range want {
			want[i] = float64(float32(d)*float32(want[i]) + (1-float32(d))*p.Data[i])
		}
	}
	for i, w := range want {
		if got := e.Average(0)[i]; math.Abs(float64(got)-w) > 1e-5*math.Abs(w) {
			t.Errorf("average[%d] = %g, want %g", i, got, w)
		}
	}
	if a := e.Average(1)[chunk+4]; a < 20 || a > 30 {
		t.Errorf("average in the second chunk = %g, want the recent values' range (20, 30)", a)
	}
	raw := append([]float32(nil), p.Data...)
	avg := append([]float32(nil), e.Average(0)...)
	e.Swap()
	for i := range raw {
		if p.Data[i] != avg[i] || e.Average(0)[i] != raw[i] {
			t.Fatalf("after Swap: param %v (want %v), average %v (want %v)", p.Data, avg, e.Average(0), raw)
		}
	}
	e.Swap()
	for i := range raw {
		if p.Data[i] != raw[i] || e.Average(0)[i] != avg[i] {
			t.Fatalf("after two Swaps: param %v, average %v", p.Data, e.Average(0))
		}
	}
	for _, d := range []float64{0, 1, -0.5, math.NaN()} {
		if _, err := NewEMA(d, []*Param{p}); err == nil {
			t.Errorf("decay %g accepted", d)
		}
	}
	if err := e.Set(func(*Param) []float32 { return []float32{1} }); err == nil {
		t.Error("Set with a short average accepted")
	}
}
