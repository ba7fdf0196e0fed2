//go:build gpu

package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// TestOpGroupNormBackwardDataTo checks the group norm's data gradient, plain
// and through a fused SiLU, written and accumulated, with and without
// saved statistics, on shapes the vectorised kernels take (P % 4 == 0,
// groups to fill the GPU) and ones they leave to the scalar kernels,
// against nn.
func TestOpGroupNormBackwardDataTo(t *testing.T) {
	d := device(t)
	shapes := []nn.GroupNormShape{
		{N: 25, C: 64, P: 36, Groups: 32, Eps: 1e-5}, // vectorised
		{N: 2, C: 32, P: 36, Groups: 8, Eps: 1e-5},   // scalar: few groups
		{N: 25, C: 64, P: 9, Groups: 32, Eps: 1e-5},  // scalar: P % 4 != 0
	}
	for i, s := range shapes {
		for _, o := range []GNBackwardData{{}, {Accumulate: true}, {SiLU: true}, {SiLU: true, Accumulate: true}} {
			for _, saved := range []bool{true, false} {
				if o.SiLU && !saved {
					continue
				}
				t.Run(fmt.Sprintf("%d/silu=%v/acc=%v/saved=%v", i, o.SiLU, o.Accumulate, saved), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(i), 17))
					x, gamma, beta, dy, base := randn(rng, s.Len()), randn(rng, s.C), randn(rng, s.C), randn(rng, s.Len()), randn(rng, s.Len())
					for j := range x {
						x[j] = 2 + 3*x[j]
					}
					dh := dy
					if o.SiLU {
						h := make([]float32, s.Len())
						nn.GroupNormForward(h, x, gamma, beta, s)
						dh = make([]float32, s.Len())
						nn.SiLUBackward(dh, dy, h)
					}
					want := make([]float32, s.Len())
					nn.GroupNormBackwardData(want, dh, x, gamma, s)
					if o.Accumulate {
						for j := range want {
							want[j] += base[j]
						}
					}
					gx, gg, gbt, gdy := upload(t, d, x), upload(t, d, gamma), upload(t, d, beta), upload(t, d, dy)
					gdx := poisoned(t, d, s.Len())
					if o.Accumulate {
						must(t, gdx.Upload(base))
					}
					defer freeAll(gx, gg, gbt, gdy, gdx)
					var st *GroupNormStats
					if saved {
						var err error
						st, err = d.NewGroupNormStats(s)
						must(t, err)
						defer st.Free()
						y := poisoned(t, d, s.Len())
						defer y.Free()
						must(t, d.GroupNormForward(y, gx, gg, gbt, st, s))
					}
					must(t, d.GroupNormBackwardDataTo(gdx, gdy, gx, gg, gbt, st, s, o))
					check(t, "dx", gdx, want, tolStrict)
				})
			}
		}
	}
}
