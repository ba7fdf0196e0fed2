package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
)

func TestGradLayerNorm(t *testing.T) {
	for _, s := range [][]int{{3, 4}, {2, 5, 8}, {1, 7, 1}, {2, 3, 300}} {
		d := s[len(s)-1]
		gradCheck(t, fmt.Sprintf("layer norm %v", s), []in{
			{shape: s, grad: true},
			{shape: []int{d}, grad: true, pos: true},
			{shape: []int{d}, grad: true},
		}, func(g *Graph, x []*G.Node) (*G.Node, error) { return g.LayerNorm(x[0], x[1], x[2], 1e-5) })
	}
}

func TestGradGEGLU(t *testing.T) {
	for _, s := range [][]int{{3, 8}, {2, 5, 6}} {
		gradCheck(t, fmt.Sprintf("geglu %v", s), []in{{shape: s, grad: true}},
			func(g *Graph, x []*G.Node) (*G.Node, error) { return g.GEGLU(x[0]) })
	}
}

func TestGradLinearTokens(t *testing.T) {
	gradCheck(t, "linear tokens", []in{
		{shape: []int{2, 5, 4}, grad: true},
		{shape: []int{3, 4}, grad: true},
		{shape: []int{3}, grad: true},
	}, func(g *Graph, x []*G.Node) (*G.Node, error) { return g.Linear(x[0], x[1], x[2]) })
	gradCheck(t, "linear tokens no bias", []in{
		{shape: []int{2, 3, 4}, grad: true},
		{shape: []int{6, 4}, grad: true},
	}, func(g *Graph, x []*G.Node) (*G.Node, error) { return g.Linear(x[0], x[1], nil) })
}

func TestGradSeqAttention(t *testing.T) {
	cases := []struct {
		n, lq, lk, c, heads int
		causal              bool
	}{
		{2, 5, 5, 4, 2, false}, // self
		{2, 6, 7, 6, 3, false}, // cross (context of 7 tokens)
		{1, 4, 4, 4, 1, true},  // causal (text encoder)
		{3, 1, 9, 2, 2, false}, // one query
	}
	for _, c := range cases {
		gradCheck(t, fmt.Sprintf("seq attention %+v", c), []in{
			{shape: []int{c.n, c.lq, c.c}, grad: true},
			{shape: []int{c.n, c.lk, c.c}, grad: true},
			{shape: []int{c.n, c.lk, c.c}, grad: true},
		}, func(g *Graph, x []*G.Node) (*G.Node, error) {
			return g.SeqAttention(x[0], x[1], x[2], c.heads, c.causal)
		})
	}
	// gradient to the queries only (a frozen context projection)
	gradCheck(t, "seq attention q only", []in{
		{shape: []int{2, 3, 4}, grad: true}, {shape: []int{2, 5, 4}}, {shape: []int{2, 5, 4}},
	}, func(g *Graph, x []*G.Node) (*G.Node, error) { return g.SeqAttention(x[0], x[1], x[2], 2, false) })
}

func TestGradSwapAxes(t *testing.T) {
	gradCheck(t, "swap frames to tokens", []in{{shape: []int{2, 3, 2, 2}, grad: true}},
		func(g *Graph, x []*G.Node) (*G.Node, error) {
			return g.SwapAxes(x[0], SwapShape{A: 2, X: 3, Y: 4, D: 1}, 2, 4, 3)
		})
	gradCheck(t, "swap clip tokens to time", []in{{shape: []int{6, 4, 2}, grad: true}},
		func(g *Graph, x []*G.Node) (*G.Node, error) {
			return g.SwapAxes(x[0], SwapShape{A: 2, X: 3, Y: 4, D: 2}, 8, 3, 2)
		})
}

func TestLayerNormMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 1))
	s := LayerNormShape{M: 7, D: 33, Eps: 1e-5}
	x, g, b := randData(rng, s.Len(), false), randData(rng, s.D, true), randData(rng, s.D, false)
	for i := range x {
		x[i] = x[i]*3 + 5 // a large mean
	}
	y := make([]float32, s.Len())
	LayerNormForward(y, x, g, b, s)
	for m := 0; m < s.M; m++ {
		var mean, v float64
		for i := 0; i < s.D; i++ {
			mean += float64(x[m*s.D+i]) / float64(s.D)
		}
		for i := 0; i < s.D; i++ {
			d := float64(x[m*s.D+i]) - mean
			v += d * d / float64(s.D)
		}
		for i := 0; i < s.D; i++ {
			want := (float64(x[m*s.D+i])-mean)/math.Sqrt(v+1e-5)*float64(g[i]) + float64(b[i])
			if math.Abs(float64(y[m*s.D+i])-want) > 1e-5*math.Max(1, math.Abs(want)) {
				t.Fatalf("y[%d,%d] = %g, want %g", m, i, y[m*s.D+i], want)
			}
		}
	}
}

func TestGEGLUMatchesDirect(t *testing.T) {
	x := []float32{1, -2, 0.5, 3, -1, 0} // one row: a = 1, -2, 0.5; gate = 3, -1, 0
	y := make([]float32, 3)
	GEGLUForward(y, x, GEGLUShape{M: 1, F: 3})
	// GELU(3) = 2.99595031, GELU(-1) = -0.15865525, GELU(0) = 0
	want := []float64{2.99595031, 0.3173105, 0}
	for i := range y {
		if math.Abs(float64(y[i])-want[i]) > 1e-6 {
			t.Errorf("geglu[%d] = %.8g, want %.8g", i, y[i], want[i])
		}
	}
}

func TestSeqAttentionMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 1))
	for _, s := range []SeqAttentionShape{
		{N: 2, Lq: 5, Lk: 7, C: 6, Heads: 3},
		{N: 2, Lq: 6, Lk: 6, C: 4, Heads: 2, Causal: true},
		{N: 1, Lq: 20, Lk: 20, C: 32, Heads: 2},
	} {
		q, k, v := randData(rng, s.QLen(), false), randData(rng, s.KVLen(), false), randData(rng, s.KVLen(), false)
		out := make([]float32, s.QLen())
		SeqAttentionForward(out, q, k, v, s)
		dh := s.C / s.Heads
		for n := 0; n < s.N; n++ {
			for h := 0; h < s.Heads; h++ {
				lk := s.Lk
				for i := 0; i < s.Lq; i++ {
					if s.Causal {
						lk = i + 1
					}
					qs := [][]float64{make([]float64, dh)}
					ks, vs := make([][]float64, lk), make([][]float64, lk)
					for c := 0; c < dh; c++ {
						qs[0][c] = float64(q[(n*s.Lq+i)*s.C+h*dh+c])
					}
					for j := 0; j < lk; j++ {
						ks[j], vs[j] = make([]float64, dh), make([]float64, dh)
						for c := 0; c < dh; c++ {
							ks[j][c] = float64(k[(n*s.Lk+j)*s.C+h*dh+c])
							vs[j][c] = float64(v[(n*s.Lk+j)*s.C+h*dh+c])
						}
					}
					want := naiveAttention(qs, ks, vs)[0]
					for c := 0; c < dh; c++ {
						got := float64(out[(n*s.Lq+i)*s.C+h*dh+c])
						if math.Abs(got-want[c]) > 1e-5 {
							t.Fatalf("%+v: out[%d,%d,%d] = %g, want %g", s, n, i, h*dh+c, got, want[c])
						}
					}
				}
			}
		}
	}
}

func TestSwapAxes(t *testing.T) {
	s := SwapShape{A: 2, X: 3, Y: 4, D: 5}
	x := make([]float32, s.Len())
	for i := range x {
		x[i] = float32(i)
	}
	y := make([]float32, s.Len())
	SwapAxesForward(y, x, s)
	for a := 0; a < s.A; a++ {
		for xi := 0; xi < s.X; xi++ {
			for yi := 0; yi < s.Y; yi++ {
				for d := 0; d < s.D; d++ {
					if y[((a*s.Y+yi)*s.X+xi)*s.D+d] != x[((a*s.X+xi)*s.Y+yi)*s.D+d] {
						t.Fatalf("swap wrong at %d %d %d %d", a, xi, yi, d)
					}
				}
			}
		}
	}
	back := make([]float32, s.Len())
	SwapAxesForward(back, y, s.Inverse())
	if maxDiff(back, x) != 0 {
		t.Error("inverse swap does not restore the input")
	}
}

// The diffusers projection: flip_sin_to_cos puts cos first; freq_shift 1
// divides by half-1.
func TestSinusoidalEmbedding(t *testing.T) {
	y := make([]float32, 2*8)
	SinusoidalEmbedding(y, []float32{10, 700}, SinusoidalShape{N: 2, Dim: 8, FlipSinToCos: true})
	for n, tv := range []float64{10, 700} {
		for i := 0; i < 4; i++ {
			f := math.Exp(-math.Log(10000) * float64(i) / 4)
			if math.Abs(float64(y[n*8+i])-math.Cos(tv*f)) > 1e-4 || math.Abs(float64(y[n*8+4+i])-math.Sin(tv*f)) > 1e-4 {
				t.Errorf("t=%g i=%d: got cos %g sin %g", tv, i, y[n*8+i], y[n*8+4+i])
			}
		}
	}
	SinusoidalEmbedding(y[:8], []float32{3}, SinusoidalShape{N: 1, Dim: 8, FreqShift: 1})
	f := math.Exp(-math.Log(10000) * 1 / 3)
	if math.Abs(float64(y[1])-math.Sin(3*f)) > 1e-6 || math.Abs(float64(y[5])-math.Cos(3*f)) > 1e-6 {
		t.Errorf("freq_shift 1: got %v", y[:8])
	}
}
