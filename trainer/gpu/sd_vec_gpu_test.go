//go:build gpu

package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// TestSDVecKernels checks the float4 layer norm (forward, statistics and
// data gradient) and GEGLU (forward, backward, in place too) of sd_vec.cu
// against float64 references, at SD's widths and at one the scalar kernels
// keep.
func TestSDVecKernels(t *testing.T) {
	d := sdDevice(t, false)
	k, err := openKernels(d)
	if err != nil {
		t.Fatal(err)
	}
	up := func(x []float32) *cuda.Tensor {
		g, err := d.FromHost(x)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Free)
		return g
	}
	zeros := func(n int) *cuda.Tensor { return up(make([]float32, n)) }
	cmp := func(what string, g *cuda.Tensor, want []float64) {
		t.Helper()
		got, err := g.ToHost()
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if e := math.Abs(float64(got[i])-want[i]) / math.Max(1, math.Abs(want[i])); !(e <= 2e-5) {
				t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, w := range []int{320, 1280, 36, 30} {
		rows := 517
		t.Run(fmt.Sprintf("layer_norm_%d", w), func(t *testing.T) {
			if vec := lnVec(int64(rows), w); vec != (w%4 == 0) {
				t.Fatalf("width %d: vectorised %v", w, vec)
			}
			x, gm, bt, dy := randn(rng, rows*w, 2), randn(rng, w, 1), randn(rng, w, 1), randn(rng, rows*w, 1)
			for i := range x {
				x[i] += 1.5
			}
			y, dx := make([]float64, rows*w), make([]float64, rows*w)
			mean, rstd := make([]float64, rows), make([]float64, rows)
			for r := 0; r < rows; r++ {
				xr := x[r*w : (r+1)*w]
				var s, q float64
				for _, v := range xr {
					s += float64(v)
				}
				m := s / float64(w)
				for _, v := range xr {
					q += (float64(v) - m) * (float64(v) - m)
				}
				rs := 1 / math.Sqrt(q/float64(w)+1e-5)
				mean[r], rstd[r] = m, rs
				var sg, sgx float64
				for i, v := range xr {
					xh := (float64(v) - m) * rs
					y[r*w+i] = xh*float64(gm[i]) + float64(bt[i])
					g := float64(dy[r*w+i]) * float64(gm[i])
					sg += g
					sgx += g * xh
				}
				for i, v := range xr {
					xh := (float64(v) - m) * rs
					dx[r*w+i] = rs * (float64(dy[r*w+i])*float64(gm[i]) - sg/float64(w) - xh*sgx/float64(w))
				}
			}
			gx, gg, gb, gdy := up(x), up(gm), up(bt), up(dy)
			gy, gm2, gr2, gdx := zeros(rows*w), zeros(rows), zeros(rows), zeros(rows*w)
			if err := k.layerNorm(gy.Ptr(), gm2.Ptr(), gr2.Ptr(), gx.Ptr(), gg.Ptr(), gb.Ptr(), int64(rows), w, 1e-5); err != nil {
				t.Fatal(err)
			}
			cmp("y", gy, y)
			cmp("mean", gm2, mean)
			cmp("rstd", gr2, rstd)
			if err := k.layerNormBackwardData(gdx.Ptr(), gdy.Ptr(), gx.Ptr(), gg.Ptr(), gm2.Ptr(), gr2.Ptr(), int64(rows), w); err != nil {
				t.Fatal(err)
			}
			cmp("dx", gdx, dx)
		})
		t.Run(fmt.Sprintf("geglu_%d", w), func(t *testing.T) {
			m, f := rows, w
			x, dy := randn(rng, m*2*f, 1.5), randn(rng, m*f, 1)
			gelu := func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) }
			geluGrad := func(v float64) float64 {
				return 0.5*(1+math.Erf(v/math.Sqrt2)) + v*math.Exp(-0.5*v*v)/math.Sqrt(2*math.Pi)
			}
			y, dx := make([]float64, m*f), make([]float64, m*2*f)
			for r := 0; r < m; r++ {
				for c := 0; c < f; c++ {
					a, g, d := float64(x[r*2*f+c]), float64(x[r*2*f+f+c]), float64(dy[r*f+c])
					y[r*f+c] = a * gelu(g)
					dx[r*2*f+c] = d * gelu(g)
					dx[r*2*f+f+c] = d * a * geluGrad(g)
				}
			}
			gx, gdy, gy, gdx := up(x), up(dy), zeros(m*f), zeros(m*2*f)
			if err := k.geglu(gy.Ptr(), gx.Ptr(), int64(m), f); err != nil {
				t.Fatal(err)
			}
			cmp("y", gy, y)
			if err := k.gegluBackward(gdx.Ptr(), gdy.Ptr(), gx.Ptr(), int64(m), f); err != nil {
				t.Fatal(err)
			}
			cmp("dx", gdx, dx)
			// in place, as the executor runs it when x dies there
			if err := k.gegluBackward(gx.Ptr(), gdy.Ptr(), gx.Ptr(), int64(m), f); err != nil {
				t.Fatal(err)
			}
			cmp("dx (in place)", gx, dx)
		})
	}
}
