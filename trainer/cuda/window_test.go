package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// hostMem emulates device memory for GEMM descriptions: addresses are byte offsets
// into one float32 slice.
type hostMem struct{ m []float32 }

func (h *hostMem) alloc(x []float32) uintptr {
	addr := uintptr(len(h.m)) * 4
	h.m = append(h.m, x...)
	return addr
}

func (h *hostMem) at(addr uintptr) []float32 { return h.m[addr/4:] }

// gemm runs g like cublasSgemmStridedBatched would, on the host.
func (h *hostMem) gemm(g Gemm) error {
	g = g.packed()
	for i := 0; i < g.Batch; i++ {
		a := h.at(g.A + uintptr(int64(i)*g.StrideA)*4)
		b := h.at(g.B + uintptr(int64(i)*g.StrideB)*4)
		c := h.at(g.C + uintptr(int64(i)*g.StrideC)*4)
		nn.Sgemm(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, g.LDA, b, g.LDB, g.Beta, c, g.LDC)
	}
	return nil
}

func maxRel(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

// The windowed temporal convolution's GEMM decomposition (interior frames as one
// sequence, clip boundaries redone) equals nn's temporal convolution, forward and
// backward-data, including clips of 1, 2 and 3 frames.
func TestTemporalWindowDecomposition(t *testing.T) {
	for i, s := range []nn.TemporalConvShape{
		{B: 1, T: 1, C: 2, K: 3, P: 4}, {B: 3, T: 2, C: 3, K: 2, P: 5}, {B: 2, T: 3, C: 4, K: 4, P: 1},
		{B: 3, T: 7, C: 5, K: 6, P: 9},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 99))
			x, w, dy := randHost(rng, s.InLen()), randHost(rng, s.WeightLen()), randHost(rng, s.OutLen())
			want := make([]float32, s.OutLen())
			nn.TemporalConvForward(want, x, w, nil, s)
			wantDx := make([]float32, s.InLen())
			nn.TemporalConvBackwardData(wantDx, dy, w, s)

			// forward: weight as (K, 3, C), what the permute kernel writes
			wr := make([]float32, s.WeightLen())
			for k := 0; k < s.K; k++ {
				for c := 0; c < s.C; c++ {
					for j := 0; j < 3; j++ {
						wr[(k*3+j)*s.C+c] = w[(k*s.C+c)*3+j]
					}
				}
			}
			// backward data: v[c][i*K+k] = w[k][c][2-i], what tconv_wt_bwd writes
			v := make([]float32, s.WeightLen())
			for c := 0; c < s.C; c++ {
				for i := 0; i < 3; i++ {
					for k := 0; k < s.K; k++ {
						v[c*3*s.K+i*s.K+k] = w[(k*s.C+c)*3+(2-i)]
					}
				}
			}
			h := &hostMem{}
			px, pwr, pv, pdy := h.alloc(x), h.alloc(wr), h.alloc(v), h.alloc(dy)
			py := h.alloc(nanHost(s.OutLen()))
			pdx := h.alloc(nanHost(s.InLen()))
			if err := tconvWindow(h.gemm, py, px, pwr, s.B, s.T, s.C, s.K, s.P); err != nil {
				t.Fatal(err)
			}
			if err := tconvWindow(h.gemm, pdx, pdy, pv, s.B, s.T, s.K, s.C, s.P); err != nil {
				t.Fatal(err)
			}
			if e := maxRel(h.at(py)[:s.OutLen()], want); !(e < 1e-5) {
				t.Errorf("forward: relative error %g", e)
			}
			if e := maxRel(h.at(pdx)[:s.InLen()], wantDx); !(e < 1e-5) {
				t.Errorf("backward data: relative error %g", e)
			}
		})
	}
}

func randHost(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func nanHost(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.NaN())
	}
	return x
}

// dwReduceHost mirrors the tconv_dw_reduce kernel line by line.
func dwReduceHost(dw, part, bnd0, bnd1 []float32, nsplit, b, t, k, c int) {
	c3, c2 := 3*c, 2*c
	nf := b*t - 2
	for idx := 0; idx < k*c3; idx++ {
		kk, col := idx/c3, idx%c3
		var acc float32
		for s := 0; s < nsplit; s++ {
			for f := 1; f <= nf; f++ {
				tt := f % t
				if tt >= 1 && tt <= t-2 {
					acc += part[(s*nf+(f-1))*k*c3+idx]
				}
			}
			for bb := 0; bb < b; bb++ {
				base := (s*b+bb)*k*c2 + kk*c2
				if col >= c {
					acc += bnd0[base+col-c]
				}
				if col < c2 {
					acc += bnd1[base+col]
				}
			}
		}
		j, cc := col/c, col%c
		dw[(kk*c+cc)*3+j] = acc
	}
}

func TestTemporalWindowFilterDecomposition(t *testing.T) {
	for i, c := range []struct {
		s      nn.TemporalConvShape
		splits int
	}{
		{nn.TemporalConvShape{B: 2, T: 3, C: 2, K: 3, P: 4}, 1},
		{nn.TemporalConvShape{B: 3, T: 5, C: 3, K: 2, P: 8}, 2},
		{nn.TemporalConvShape{B: 1, T: 9, C: 4, K: 5, P: 12}, 4},
	} {
		s := c.s
		rng := rand.New(rand.NewPCG(uint64(i), 98))
		x, dy := randHost(rng, s.InLen()), randHost(rng, s.OutLen())
		want := make([]float32, s.WeightLen())
		nn.TemporalConvBackwardFilter(want, nil, dy, x, s)
		nf := s.B*s.T - 2
		np, nb := c.splits*nf*s.K*3*s.C, c.splits*s.B*s.K*2*s.C
		h := &hostMem{}
		px, pdy := h.alloc(x), h.alloc(dy)
		part, bnd0, bnd1 := h.alloc(nanHost(np)), h.alloc(nanHost(nb)), h.alloc(nanHost(nb))
		if err := tconvFilterWindowParts(h.gemm, part, bnd0, bnd1, pdy, px, s, c.splits); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, s.WeightLen())
		dwReduceHost(got, h.at(part)[:np], h.at(bnd0)[:nb], h.at(bnd1)[:nb], c.splits, s.B, s.T, s.K, s.C)
		if e := maxRel(got, want); !(e < 1e-5) {
			t.Errorf("case %d: filter gradient relative error %g", i, e)
		}
	}
	if got := tconvSplits(4096); got != 8 {
		t.Errorf("tconvSplits(4096) = %d", got)
	}
	if got := tconvSplits(1000); got != 1 {
		t.Errorf("tconvSplits(1000) = %d", got)
	}
}
