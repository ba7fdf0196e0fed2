package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Forward passes against direct-loop definitions, independent of im2col,
// GEMM and the gather/scatter of the fast paths.

func maxDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

func TestConv2DMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range []Conv2DShape{
		{N: 3, C: 2, H: 7, W: 6, K: 3, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 2, C: 3, H: 8, W: 8, K: 4, KH: 3, KW: 3, Stride: 2, Pad: 1},
		{N: 1, C: 5, H: 4, W: 3, K: 2, KH: 1, KW: 1, Stride: 1, Pad: 0},
	} {
		x, w, b := randData(rng, s.InLen(), false), randData(rng, s.WeightLen(), false), randData(rng, s.K, false)
		y := make([]float32, s.OutLen())
		Conv2DForward(y, x, w, b, s)
		want := make([]float32, s.OutLen())
		oh, ow := s.OutH(), s.OutW()
		for n := 0; n < s.N; n++ {
			for k := 0; k < s.K; k++ {
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						acc := float64(b[k])
						for c := 0; c < s.C; c++ {
							for i := 0; i < s.KH; i++ {
								for j := 0; j < s.KW; j++ {
									iy, ix := oy*s.Stride-s.Pad+i, ox*s.Stride-s.Pad+j
									if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
										continue
									}
									acc += float64(w[((k*s.C+c)*s.KH+i)*s.KW+j]) * float64(x[((n*s.C+c)*s.H+iy)*s.W+ix])
								}
							}
						}
						want[((n*s.K+k)*oh+oy)*ow+ox] = float32(acc)
					}
				}
			}
		}
		if d := maxDiff(y, want); d > 1e-5 {
			t.Errorf("conv2d %+v: max diff %g", s, d)
		}
	}
}

func TestTemporalConvMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 1))
	s := TemporalConvShape{B: 2, T: 5, C: 3, K: 4, P: 6}
	x, w, b := randData(rng, s.InLen(), false), randData(rng, s.WeightLen(), false), randData(rng, s.K, false)
	y := make([]float32, s.OutLen())
	TemporalConvForward(y, x, w, b, s)
	for bi := 0; bi < s.B; bi++ {
		for tt := 0; tt < s.T; tt++ {
			for k := 0; k < s.K; k++ {
				for p := 0; p < s.P; p++ {
					acc := float64(b[k])
					for c := 0; c < s.C; c++ {
						for j := 0; j < 3; j++ {
							ts := tt + j - 1
							if ts < 0 || ts >= s.T {
								continue
							}
							acc += float64(w[(k*s.C+c)*3+j]) * float64(x[((bi*s.T+ts)*s.C+c)*s.P+p])
						}
					}
					got := y[((bi*s.T+tt)*s.K+k)*s.P+p]
					if math.Abs(float64(got)-acc) > 1e-5 {
						t.Fatalf("y[%d,%d,%d,%d] = %g, want %g", bi, tt, k, p, got, acc)
					}
				}
			}
		}
	}
	// identity weights reproduce the input
	id := make([]float32, 3*3*3)
	for c := 0; c < 3; c++ {
		id[(c*3+c)*3+1] = 1
	}
	s2 := TemporalConvShape{B: 2, T: 5, C: 3, K: 3, P: 6}
	y2 := make([]float32, s2.OutLen())
	TemporalConvForward(y2, x[:s2.InLen()], id, nil, s2)
	if d := maxDiff(y2, x[:s2.InLen()]); d != 0 {
		t.Errorf("identity temporal conv changed the input by %g", d)
	}
}

// naiveAttention computes softmax(q k^T / sqrt(d)) v for token-major
// sequences (as many keys as values, any number of queries).
func naiveAttention(q, k, v [][]float64) [][]float64 {
	L, d := len(q), len(q[0])
	out := make([][]float64, L)
	for i := range q {
		sc := make([]float64, len(k))
		m := math.Inf(-1)
		for j := range k {
			for c := 0; c < d; c++ {
				sc[j] += q[i][c] * k[j][c]
			}
			sc[j] /= math.Sqrt(float64(d))
			m = math.Max(m, sc[j])
		}
		var sum float64
		for j := range sc {
			sc[j] = math.Exp(sc[j] - m)
			sum += sc[j]
		}
		out[i] = make([]float64, d)
		for j := range sc {
			for c := 0; c < d; c++ {
				out[i][c] += sc[j] / sum * v[j][c]
			}
		}
	}
	return out
}

func TestAttentionMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	for _, s := range []AttentionShape{
		{B: 2, T: 3, C: 4, P: 5, Heads: 2},
		{B: 2, T: 4, C: 6, P: 3, Heads: 3, Temporal: true},
	} {
		qkv := randData(rng, s.InLen(), false)
		out := make([]float32, s.OutLen())
		AttentionForward(out, qkv, s)
		dh := s.C / s.Heads
		at := func(b, t, c, p int) int { return ((b*s.T+t)*3*s.C+c)*s.P + p }
		for b := 0; b < s.B; b++ {
			// sequences: spatial = (t fixed, tokens p); temporal = (p fixed, tokens t)
			outer, L := s.T, s.P
			if s.Temporal {
				outer, L = s.P, s.T
			}
			for o := 0; o < outer; o++ {
				for h := 0; h < s.Heads; h++ {
					q, k, v := make([][]float64, L), make([][]float64, L), make([][]float64, L)
					for l := 0; l < L; l++ {
						tt, p := o, l
						if s.Temporal {
							tt, p = l, o
						}
						q[l], k[l], v[l] = make([]float64, dh), make([]float64, dh), make([]float64, dh)
						for c := 0; c < dh; c++ {
							q[l][c] = float64(qkv[at(b, tt, h*dh+c, p)])
							k[l][c] = float64(qkv[at(b, tt, s.C+h*dh+c, p)])
							v[l][c] = float64(qkv[at(b, tt, 2*s.C+h*dh+c, p)])
						}
					}
					want := naiveAttention(q, k, v)
					for l := 0; l < L; l++ {
						tt, p := o, l
						if s.Temporal {
							tt, p = l, o
						}
						for c := 0; c < dh; c++ {
							got := out[((b*s.T+tt)*s.C+h*dh+c)*s.P+p]
							if math.Abs(float64(got)-want[l][c]) > 1e-5 {
								t.Fatalf("%+v: out[b%d t%d c%d p%d] = %g, want %g", s, b, tt, h*dh+c, p, got, want[l][c])
							}
						}
					}
				}
			}
		}
	}
}

func TestGroupNormNormalisesLargeGroups(t *testing.T) {
	// Gorgonia's own op is wrong above 256 elements per group; ours must
	// give zero mean and unit variance per group at any size.
	rng := rand.New(rand.NewPCG(4, 1))
	s := GroupNormShape{N: 2, C: 8, P: 40 * 40, Groups: 2, Eps: 1e-5}
	x := randData(rng, s.Len(), false)
	for i := range x {
		x[i] = x[i]*3 + 5
	}
	gamma, beta := make([]float32, s.C), make([]float32, s.C)
	for i := range gamma {
		gamma[i] = 1
	}
	y := make([]float32, s.Len())
	GroupNormForward(y, x, gamma, beta, s)
	gl := s.C / s.Groups * s.P
	for g := 0; g < s.N*s.Groups; g++ {
		var m, v float64
		for _, e := range y[g*gl : (g+1)*gl] {
			m += float64(e)
		}
		m /= float64(gl)
		for _, e := range y[g*gl : (g+1)*gl] {
			v += (float64(e) - m) * (float64(e) - m)
		}
		v /= float64(gl)
		if math.Abs(m) > 1e-4 || math.Abs(v-1) > 1e-3 {
			t.Errorf("group %d (%d elements): mean %g var %g, want 0 and 1", g, gl, m, v)
		}
	}
}

func TestTimestepEmbedding(t *testing.T) {
	y := make([]float32, 2*8)
	TimestepEmbedding(y, []float32{0, 10}, 8)
	// t = 0: cos = 1, sin = 0
	for i := 0; i < 4; i++ {
		if y[i] != 1 || y[4+i] != 0 {
			t.Fatalf("embedding of t=0 = %v", y[:8])
		}
	}
	// t = 10, i = 1: f = 10000^(-1/4) = 0.1, angle 1
	if math.Abs(float64(y[8+1])-math.Cos(1)) > 1e-6 || math.Abs(float64(y[8+4+1])-math.Sin(1)) > 1e-6 {
		t.Errorf("embedding of t=10 = %v", y[8:])
	}
}

func TestUpsampleValues(t *testing.T) {
	y := make([]float32, 16)
	Upsample2xForward(y, []float32{1, 2, 3, 4}, ResampleShape{N: 1, C: 1, H: 2, W: 2})
	want := []float32{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}
	if maxDiff(y, want) != 0 {
		t.Errorf("upsample = %v, want %v", y, want)
	}
}

func TestExpf(t *testing.T) {
	for x := float32(-87); x < 88; x += 0.01 {
		want := math.Exp(float64(x))
		if got := float64(expf(x)); math.Abs(got-want) > 1e-6*want {
			t.Fatalf("expf(%g) = %g, want %g", x, got, want)
		}
	}
	if expf(-200) != 0 || !math.IsInf(float64(expf(200)), 1) {
		t.Error("expf does not saturate")
	}
}

// Every kernel a graph can hold has a description for executors.
func TestSpecCoversAllKernels(t *testing.T) {
	ks := []kernel{
		&conv2dK{}, &conv2dDataK{}, &conv2dFilterK{}, &chanSumK{}, &tconvFwd{}, &tconvData{}, &tconvFilterK{},
		&gnK{}, &gnDataK{}, &gnGammaK{}, &siluK{}, &siluBwdK{}, &linearK{}, &linearDataK{}, &linearWK{},
		&attnK{}, &attnBwdK{}, &upK{}, &upBwdK{}, &addK{}, &addChanK{}, &addChanBwdK{}, &concatK{}, &splitK{},
		&embedK{}, &mseK{}, &mseBwdK{}, &lnK{}, &lnDataK{}, &lnGammaK{}, &gegluK{}, &gegluBwdK{},
		&seqAttnK{}, &seqAttnBwdK{}, &swapK{}, &sinEmbedK{},
	}
	seen := map[OpKind]bool{}
	for _, k := range ks {
		s := specOf(k)
		if s.Kind == "" || s.Shape == nil {
			t.Errorf("%T has no spec", k)
		}
		if seen[s.Kind] {
			t.Errorf("%T: kind %s used twice", k, s.Kind)
		}
		seen[s.Kind] = true
	}
}

func TestInputsInOrder(t *testing.T) {
	g := NewGraph()
	a := g.Input("a", 1, 2, 1, 1)
	b := g.Input("b", 1, 3, 1, 1)
	c, err := g.Concat(b, a)
	if err != nil {
		t.Fatal(err)
	}
	in := Inputs(c)
	if len(in) != 2 || in[0] != b || in[1] != a {
		t.Errorf("Inputs = %v, want [b a]", in)
	}
	if s, ok := SpecOf(c); !ok || s.Kind != KindConcat || s.Shape.(ConcatShape).CA != 3 {
		t.Errorf("SpecOf(concat) = %+v", s)
	}
}

// TestConv2DBackwardDataMatchesDirect: dx of every conv kind (the
// same-size ones through the flipped-kernel forward conv) against the
// direct adjoint sum.
func TestConv2DBackwardDataMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	for _, s := range []Conv2DShape{
		{N: 3, C: 2, H: 7, W: 6, K: 3, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 2, C: 4, H: 5, W: 5, K: 3, KH: 5, KW: 5, Stride: 1, Pad: 2},
		{N: 2, C: 3, H: 8, W: 8, K: 4, KH: 3, KW: 3, Stride: 2, Pad: 1},
		{N: 1, C: 5, H: 4, W: 3, K: 2, KH: 1, KW: 1, Stride: 1, Pad: 0},
	} {
		dy, w := randData(rng, s.OutLen(), false), randData(rng, s.WeightLen(), false)
		dx := randData(rng, s.InLen(), false) // overwritten
		Conv2DBackwardData(dx, dy, w, s)
		want := make([]float64, s.InLen())
		oh, ow := s.OutH(), s.OutW()
		for n := 0; n < s.N; n++ {
			for k := 0; k < s.K; k++ {
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						g := float64(dy[((n*s.K+k)*oh+oy)*ow+ox])
						for c := 0; c < s.C; c++ {
							for i := 0; i < s.KH; i++ {
								for j := 0; j < s.KW; j++ {
									iy, ix := oy*s.Stride-s.Pad+i, ox*s.Stride-s.Pad+j
									if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
										continue
									}
									want[((n*s.C+c)*s.H+iy)*s.W+ix] += g * float64(w[((k*s.C+c)*s.KH+i)*s.KW+j])
								}
							}
						}
					}
				}
			}
		}
		w32 := make([]float32, len(want))
		for i, v := range want {
			w32[i] = float32(v)
		}
		if d := maxDiff(dx, w32); d > 1e-5 {
			t.Errorf("conv2d backward data %+v: max diff %g", s, d)
		}
	}
}
