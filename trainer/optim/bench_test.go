package optim

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkAdamWStep times one AdamW step (global norm, clipping, update)
// over the temporal parameter counts of the tiny and timelapse models.
func BenchmarkAdamWStep(b *testing.B) {
	for _, n := range []int{71_520, 3_600_000} {
		b.Run(fmt.Sprintf("params=%d", n), func(b *testing.B) {
			ps := randParams(1, n)
			o, _ := New(DefaultConfig(), ps)
			g := gradsFor(ps, 1)
			b.SetBytes(int64(n) * 4 * 5) // read w, g, m, v; write w, m, v (counted as 5 streams)
			b.ResetTimer()
			for range b.N {
				if _, err := o.Step(g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOverlappedClipped times a clipped overlapped step's phases over
// PIPELINE_OPTIM_BENCH_FLOATS parameters (default 16M; the SD UNet's
// temporal layers have 241M) in 16 params and 8 buckets, staged: the
// work while the gradients arrive (update-ms) and after the norm
// (complete-ms), for a step after an unclipped one (speculated, then
// redone) and after a clipped one (deferred, updated once).
func BenchmarkOverlappedClipped(b *testing.B) {
	n := 16 << 20
	if s := os.Getenv("PIPELINE_OPTIM_BENCH_FLOATS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	sizes := make([]int, 16)
	for i := range sizes {
		sizes[i] = n / 16
	}
	ps := randParams(1, sizes...)
	cfg := DefaultConfig()
	cfg.ClipNorm = 1e-3
	o, _ := New(cfg, ps)
	g := gradsFor(ps, 1)
	stage := make([][]float32, len(g))
	for i := range g {
		stage[i] = make([]float32, len(g[i]))
	}
	for _, after := range []string{"unclipped", "clipped"} {
		b.Run("after="+after, func(b *testing.B) {
			var upd, fin time.Duration
			for range b.N {
				o.clippedLast = after == "clipped"
				t0 := time.Now()
				ov := o.BeginOverlapped()
				for k := 0; k < 16; k += 2 {
					if _, err := ov.Update([]int{k, k + 1}, g, stage); err != nil {
						b.Fatal(err)
					}
				}
				t1 := time.Now()
				if _, _, err := ov.Finish(); err != nil {
					b.Fatal(err)
				}
				for k := 0; k < 16; k += 2 {
					if _, err := ov.Complete([]int{k, k + 1}, g, stage); err != nil {
						b.Fatal(err)
					}
				}
				upd += t1.Sub(t0)
				fin += time.Since(t1)
			}
			b.ReportMetric(float64(upd.Microseconds())/1000/float64(b.N), "update-ms")
			b.ReportMetric(float64(fin.Microseconds())/1000/float64(b.N), "complete-ms")
		})
	}
}
