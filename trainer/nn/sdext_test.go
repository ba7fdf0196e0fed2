package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// fdCheck compares an op's backward (dx from dy) with central finite
// differences of L(x) = sum(forward(x) * r) in float64, at every element.
func fdCheck(t *testing.T, name string, n, m int, fwd func(y, x []float32), bwd func(dx, dy, x []float32)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(name)), 3))
	x, r := randData(rng, n, false), randData(rng, m, false)
	dx := make([]float32, n)
	bwd(dx, r, x)
	y := make([]float32, m)
	loss := func() float64 {
		fwd(y, x)
		var s float64
		for i, v := range y {
			s += float64(v) * float64(r[i])
		}
		return s
	}
	const h = 1e-2
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		lp := loss()
		x[i] = orig - h
		lm := loss()
		x[i] = orig
		fd := (lp - lm) / (2 * h)
		if math.Abs(fd-float64(dx[i])) > 2e-3*math.Max(1, math.Abs(fd)) {
			t.Errorf("%s: element %d: backward %v, finite difference %v", name, i, dx[i], fd)
		}
	}
}

func TestQuickGELUReferenceAndGradient(t *testing.T) {
	x := []float32{-3, -1, -0.25, 0, 0.5, 2, 6}
	y := make([]float32, len(x))
	QuickGELUForward(y, x)
	for i, v := range x {
		want := float64(v) / (1 + math.Exp(-1.702*float64(v)))
		if math.Abs(float64(y[i])-want) > 1e-6 {
			t.Errorf("quick-gelu(%v) = %v, want %v", v, y[i], want)
		}
	}
	fdCheck(t, "quick-gelu", 40, 40, QuickGELUForward, QuickGELUBackward)
}

func TestGELUReferenceAndGradient(t *testing.T) {
	y := make([]float32, 3)
	GELUForward(y, []float32{-1, 0, 1})
	// PyTorch's exact GELU: 0.5 x (1 + erf(x / sqrt 2))
	for i, want := range []float64{-0.15865525, 0, 0.84134475} {
		if math.Abs(float64(y[i])-want) > 1e-6 {
			t.Errorf("gelu %d = %v, want %v", i, y[i], want)
		}
	}
	fdCheck(t, "gelu", 40, 40, GELUForward, GELUBackward)
}

func TestPadEndReferenceAndGradient(t *testing.T) {
	s := PadEndShape{N: 2, C: 3, H: 4, W: 5}
	rng := rand.New(rand.NewPCG(1, 2))
	x := randData(rng, s.InLen(), false)
	y := make([]float32, s.OutLen())
	for i := range y {
		y[i] = 99 // overwritten everywhere
	}
	PadEndForward(y, x, s)
	for p := 0; p < s.N*s.C; p++ {
		for i := 0; i <= s.H; i++ {
			for j := 0; j <= s.W; j++ {
				want := float32(0)
				if i < s.H && j < s.W {
					want = x[(p*s.H+i)*s.W+j]
				}
				if got := y[(p*(s.H+1)+i)*(s.W+1)+j]; got != want {
					t.Fatalf("plane %d (%d,%d) = %v, want %v", p, i, j, got, want)
				}
			}
		}
	}
	fdCheck(t, "pad-end", s.InLen(), s.OutLen(),
		func(y, x []float32) { PadEndForward(y, x, s) },
		func(dx, dy, _ []float32) { PadEndBackward(dx, dy, s) })
}

func TestTokenEmbedding(t *testing.T) {
	s := TokenEmbeddingShape{N: 2, L: 3, D: 2, Vocab: 4}
	token := []float32{0, 1, 10, 11, 20, 21, 30, 31}
	pos := []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 9, 9} // a longer table is fine
	y := make([]float32, 12)
	if err := TokenEmbeddingForward(y, []float32{3, 0, 1, 2, 2, 3}, token, pos, s); err != nil {
		t.Fatal(err)
	}
	want := []float32{30.1, 31.2, 0.3, 1.4, 10.5, 11.6, 20.1, 21.2, 20.3, 21.4, 30.5, 31.6}
	for i := range want {
		if math.Abs(float64(y[i]-want[i])) > 1e-5 {
			t.Fatalf("y %v, want %v", y, want)
		}
	}
	if err := TokenEmbeddingForward(y, []float32{4, 0, 0, 0, 0, 0}, token, pos, s); err == nil {
		t.Fatal("id 4 of a 4-token vocabulary accepted")
	}
	if err := TokenEmbeddingForward(y, []float32{0.5, 0, 0, 0, 0, 0}, token, pos, s); err == nil {
		t.Fatal("fractional id accepted")
	}
}
