package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// cpuTconv emulates tconvDev on host memory, with cuda.Gemm's documented
// row-major semantics, so the direct temporal convolution's GEMM and index
// plan is checked against trainer/nn without a GPU.
type cpuTconv struct {
	bufs [][]float32 // keeps every allocation reachable
}

func addr(s []float32) uintptr { return uintptr(unsafe.Pointer(&s[0])) }

func at(p uintptr) *float32 { return *(**float32)(unsafe.Pointer(&p)) }

func fl(p uintptr, i int64) *float32 { return at(p + uintptr(i)*4) }

func (c *cpuTconv) alloc(n int) (uintptr, func(), error) {
	b := make([]float32, n)
	for i := range b {
		b[i] = float32(math.NaN()) // poison: every element must be written
	}
	c.bufs = append(c.bufs, b)
	return addr(b), func() {}, nil
}

func (c *cpuTconv) gemm(x cuda.GemmEx) error {
	if x.TypeA != x.TypeB || (x.TypeA != cuda.TypeF32 && x.TypeA != cuda.TypeBF16) || x.TypeC != cuda.TypeF32 {
		return fmt.Errorf("cpuTconv: float32 or bfloat16 operands, float32 results")
	}
	g := x.Gemm
	rd := func(p uintptr, i int64) float32 { return *fl(p, i) }
	if x.TypeA == cuda.TypeBF16 {
		rd = func(p uintptr, i int64) float32 { return bf16At(p, i) }
	}
	lda, ldb, ldc := g.LDA, g.LDB, g.LDC
	if lda == 0 {
		lda = g.K
		if g.TransA {
			lda = g.M
		}
	}
	if ldb == 0 {
		ldb = g.N
		if g.TransB {
			ldb = g.K
		}
	}
	if ldc == 0 {
		ldc = g.N
	}
	for b := 0; b < g.Batch; b++ {
		a0, b0, c0 := int64(b)*g.StrideA, int64(b)*g.StrideB, int64(b)*g.StrideC
		for i := 0; i < g.M; i++ {
			for j := 0; j < g.N; j++ {
				var acc float64
				for k := 0; k < g.K; k++ {
					var av, bv float32
					if g.TransA {
						av = rd(g.A, a0+int64(k*lda+i))
					} else {
						av = rd(g.A, a0+int64(i*lda+k))
					}
					if g.TransB {
						bv = rd(g.B, b0+int64(j*ldb+k))
					} else {
						bv = rd(g.B, b0+int64(k*ldb+j))
					}
					acc += float64(av) * float64(bv)
				}
				cp := fl(g.C, c0+int64(i*ldc+j))
				v := float64(g.Alpha) * acc
				if g.Beta != 0 {
					v += float64(g.Beta) * float64(*cp)
				}
				*cp = float32(v)
			}
		}
	}
	return nil
}

func (c *cpuTconv) wfwd(out, w uintptr, k, ch int) error {
	for kk := 0; kk < k; kk++ {
		for j := 0; j < 3; j++ {
			for cc := 0; cc < ch; cc++ {
				*fl(out, int64(kk*3*ch+j*ch+cc)) = *fl(w, int64((kk*ch+cc)*3+j))
			}
		}
	}
	return nil
}

func (c *cpuTconv) wdata(out, w uintptr, k, ch int) error {
	for cc := 0; cc < ch; cc++ {
		for jp := 0; jp < 3; jp++ {
			for kk := 0; kk < k; kk++ {
				*fl(out, int64(cc*3*k+jp*k+kk)) = *fl(w, int64((kk*ch+cc)*3+2-jp))
			}
		}
	}
	return nil
}

func (c *cpuTconv) wgrad(dw, dwp uintptr, k, ch int) error {
	for kk := 0; kk < k; kk++ {
		for cc := 0; cc < ch; cc++ {
			for j := 0; j < 3; j++ {
				*fl(dw, int64((kk*ch+cc)*3+j)) = *fl(dwp, int64(kk*3*ch+j*ch+cc))
			}
		}
	}
	return nil
}

func (c *cpuTconv) zeroBlock(a uintptr, rows, cols, ld, batch int, bstride int64) error {
	for b := 0; b < batch; b++ {
		for r := 0; r < rows; r++ {
			for col := 0; col < cols; col++ {
				*fl(a, int64(b)*bstride+int64(r*ld+col)) = 0
			}
		}
	}
	return nil
}

func (c *cpuTconv) bias(y, b uintptr, n int64, ch, p int) error {
	for i := int64(0); i < n*int64(ch*p); i++ {
		*fl(y, i) += *fl(b, (i/int64(p))%int64(ch))
	}
	return nil
}

func (c *cpuTconv) biasEmb(y, b, e uintptr, n int64, ch, p int) error {
	for i := int64(0); i < n*int64(ch*p); i++ {
		nc := i / int64(p)
		*fl(y, i) += *fl(b, nc%int64(ch)) + *fl(e, nc)
	}
	return nil
}

func (c *cpuTconv) ones(y uintptr, n int) error {
	for i := 0; i < n; i++ {
		*fl(y, int64(i)) = 1
	}
	return nil
}

func maxRelErr(got, want []float32) float64 {
	var num, den float64
	for i := range got {
		if math.IsNaN(float64(got[i])) {
			return math.Inf(1)
		}
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(num / den)
}

func TestDirectTemporalConvMatchesNN(t *testing.T) {
	for i, s := range []nn.TemporalConvShape{
		{B: 2, T: 4, C: 3, K: 5, P: 6},
		{B: 3, T: 2, C: 4, K: 4, P: 5},
		{B: 1, T: 3, C: 2, K: 3, P: 7},
		{B: 2, T: 1, C: 3, K: 2, P: 4},
		{B: 1, T: 5, C: 4, K: 4, P: 3},
	} {
		t.Run(fmt.Sprintf("%+v", s), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 5))
			rnd := func(n int) []float32 { return randn(rng, n, 1) }
			x, w, b, dy := rnd(s.InLen()), rnd(s.WeightLen()), rnd(s.K), rnd(s.OutLen())
			dev := &cpuTconv{}
			poisoned := func(n int) []float32 { p, _, _ := dev.alloc(n); return unsafe.Slice(at(p), n) }

			want := make([]float32, s.OutLen())
			nn.TemporalConvForward(want, x, w, b, s)
			got := poisoned(s.OutLen())
			if err := tconvForward(dev, addr(got), addr(x), addr(w), addr(b), s); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(got, want); e > 1e-5 {
				t.Errorf("forward: rel err %.3g", e)
			}
			// without bias, then bias and the timestep-embedding add in one pass
			emb := rnd(s.B * s.T * s.K)
			nn.AddChannelForward(want, want, emb, nn.ChannelShape{N: s.B * s.T, C: s.K, P: s.P})
			got = poisoned(s.OutLen())
			if err := tconvForward(dev, addr(got), addr(x), addr(w), 0, s); err != nil {
				t.Fatal(err)
			}
			if err := dev.biasEmb(addr(got), addr(b), addr(emb), int64(s.B*s.T), s.K, s.P); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(got, want); e > 1e-5 {
				t.Errorf("forward + embedding: rel err %.3g", e)
			}

			wantDx := make([]float32, s.InLen())
			nn.TemporalConvBackwardData(wantDx, dy, w, s)
			gotDx := poisoned(s.InLen())
			if err := tconvBackwardData(dev, addr(gotDx), addr(dy), addr(w), s); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(gotDx, wantDx); e > 1e-5 {
				t.Errorf("backward data: rel err %.3g", e)
			}

			wantDw := make([]float32, s.WeightLen())
			nn.TemporalConvBackwardFilter(wantDw, nil, dy, x, s)
			gotDw := poisoned(s.WeightLen())
			if err := tconvBackwardFilter(dev, addr(gotDw), addr(dy), addr(x), s); err != nil {
				t.Fatal(err)
			}
			if e := maxRelErr(gotDw, wantDw); e > 1e-5 {
				t.Errorf("backward filter: rel err %.3g", e)
			}
		})
	}
}

// randn draws n values of N(0, scale²) (the tests' random tensors).
func randn(rng *rand.Rand, n int, scale float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() * scale)
	}
	return out
}
