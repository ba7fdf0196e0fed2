package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSgemm checks the packed kernel (and whatever Sgemm dispatches to)
// against a float64 triple loop over every transpose combination and edge
// sizes around the block and panel sizes.
func TestSgemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	sizes := [][3]int{{1, 1, 1}, {5, 17, 3}, {6, 16, 256}, {7, 33, 257}, {13, 40, 600}, {100, 9, 31}, {3, 2100, 5}}
	for _, sz := range sizes {
		m, n, k := sz[0], sz[1], sz[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				a := randData(rng, m*k, false)
				b := randData(rng, k*n, false)
				c := randData(rng, m*n, false)
				lda, ldb := k, n
				if ta {
					lda = m
				}
				if tb {
					ldb = k
				}
				alpha, beta := float32(0.7), float32(0.3)
				want := make([]float64, m*n)
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						var s float64
						for p := 0; p < k; p++ {
							var av, bv float32
							if ta {
								av = a[p*lda+i]
							} else {
								av = a[i*lda+p]
							}
							if tb {
								bv = b[j*ldb+p]
							} else {
								bv = b[p*ldb+j]
							}
							s += float64(av) * float64(bv)
						}
						want[i*n+j] = float64(alpha)*s + float64(beta)*float64(c[i*n+j])
					}
				}
				Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, n)
				for i := range want {
					if d := math.Abs(want[i] - float64(c[i])); d > 1e-4*math.Max(1, math.Sqrt(float64(k))) {
						t.Fatalf("m=%d n=%d k=%d ta=%v tb=%v: c[%d] = %g, want %g", m, n, k, ta, tb, i, c[i], want[i])
					}
				}
			}
		}
	}
}

// BenchmarkSgemm compares the packed FMA kernel with gonum's Sgemm on a
// conv-shaped product (64 output channels, 32x32 positions, 64*9 taps).
//
//	go test ./trainer/nn -run '^$' -bench Sgemm -cpu 1
func BenchmarkSgemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	m, n, k := 64, 1024, 576
	x, y, z := randData(rng, m*k, false), randData(rng, k*n, false), make([]float32, m*n)
	for _, impl := range []string{"fma", "gonum"} {
		b.Run(impl, func(b *testing.B) {
			if impl == "fma" && !haveFMA {
				b.Skip("no AVX2/FMA")
			}
			saved := haveFMA
			haveFMA = impl == "fma"
			defer func() { haveFMA = saved }()
			for i := 0; i < b.N; i++ {
				Sgemm(false, false, m, n, k, 1, x, k, y, n, 0, z, n)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// With beta = 0 the old contents of C are not read, even NaN.
func TestSgemmBetaZeroIgnoresC(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	m, n, k := 12, 32, 7
	a, b := randData(rng, m*k, false), randData(rng, k*n, false)
	c := make([]float32, m*n)
	for i := range c {
		c[i] = float32(math.NaN())
	}
	Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
	for i, v := range c {
		if math.IsNaN(float64(v)) {
			t.Fatalf("c[%d] is NaN after beta = 0", i)
		}
	}
}
