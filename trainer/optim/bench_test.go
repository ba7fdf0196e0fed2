package optim

import (
	"fmt"
	"testing"
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
