//go:build gpu

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

func TestOpConv2D(t *testing.T) {
	shapes := []nn.Conv2DShape{
		{N: 2, C: 3, H: 9, W: 7, K: 5, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 3, C: 8, H: 16, W: 16, K: 16, KH: 3, KW: 3, Stride: 2, Pad: 1}, // downsample
		{N: 4, C: 16, H: 8, W: 8, K: 8, KH: 1, KW: 1, Stride: 1, Pad: 0},   // 1x1 skip
		{N: 2, C: 32, H: 32, W: 32, K: 32, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 1, C: 4, H: 11, W: 13, K: 6, KH: 5, KW: 3, Stride: 2, Pad: 2},
	}
	convBackends(t, false, func(t *testing.T) {
		precisions(t, func(t *testing.T, tol float64) {
			d := device(t)
			for i, s := range shapes {
				t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(i), 1))
					x, w, b := randn(rng, s.InLen()), randn(rng, s.WeightLen()), randn(rng, s.K)
					dy := randn(rng, s.OutLen())
					y := make([]float32, s.OutLen())
					nn.Conv2DForward(y, x, w, b, s)
					dx := make([]float32, s.InLen())
					nn.Conv2DBackwardData(dx, dy, w, s)
					dw, db := make([]float32, s.WeightLen()), make([]float32, s.K)
					nn.Conv2DBackwardFilter(dw, db, dy, x, s)

					gx, gw, gb, gdy := upload(t, d, x), upload(t, d, w), upload(t, d, b), upload(t, d, dy)
					gy, gdx, gdw, gdb := poisoned(t, d, s.OutLen()), poisoned(t, d, s.InLen()), poisoned(t, d, s.WeightLen()), poisoned(t, d, s.K)
					defer freeAll(gx, gw, gb, gdy, gy, gdx, gdw, gdb)
					must(t, d.Conv2DForward(gy, gx, gw, gb, s))
					check(t, "y", gy, y, tol)
					must(t, d.Conv2DBackwardData(gdx, gdy, gw, s))
					check(t, "dx", gdx, dx, tol)
					must(t, d.Conv2DBackwardFilter(gdw, gdb, gdy, gx, s))
					check(t, "dw", gdw, dw, tol)
					check(t, "db", gdb, db, tolStrict)
				})
			}
		})
	})
}

func TestOpGroupNorm(t *testing.T) {
	d := device(t)
	shapes := []nn.GroupNormShape{
		{N: 1, C: 4, P: 3, Groups: 2, Eps: 1e-5},
		{N: 2, C: 32, P: 64, Groups: 8, Eps: 1e-5},    // 256 per group
		{N: 3, C: 64, P: 1024, Groups: 32, Eps: 1e-5}, // 2048 per group
		{N: 2, C: 16, P: 4096, Groups: 1, Eps: 1e-6},  // one large group
		{N: 10, C: 64, P: 256, Groups: 32, Eps: 1e-5}, // enough groups for the fused forward
		{N: 2, C: 64, P: 32773, Groups: 8, Eps: 1e-6}, // split statistics, ragged slices
		{N: 25, C: 320, P: 64, Groups: 32, Eps: 1e-5}, // vectorised (ops_groupnorm_vec.go), SD's level-3 frames
	}
	for i, s := range shapes {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			x, gamma, beta, dy := randn(rng, s.Len()), randn(rng, s.C), randn(rng, s.C), randn(rng, s.Len())
			for j := range x { // an offset mean stresses the variance computation
				x[j] = 3 + 2*x[j]
			}
			y := make([]float32, s.Len())
			nn.GroupNormForward(y, x, gamma, beta, s)
			dx := make([]float32, s.Len())
			nn.GroupNormBackwardData(dx, dy, x, gamma, s)
			dg, dbt := make([]float32, s.C), make([]float32, s.C)
			nn.GroupNormBackwardParams(dg, dbt, dy, x, s)

			gx, gg, gbt, gdy := upload(t, d, x), upload(t, d, gamma), upload(t, d, beta), upload(t, d, dy)
			gy, gdx, gdg, gdb := poisoned(t, d, s.Len()), poisoned(t, d, s.Len()), poisoned(t, d, s.C), poisoned(t, d, s.C)
			defer freeAll(gx, gg, gbt, gdy, gy, gdx, gdg, gdb)
			st, err := d.NewGroupNormStats(s)
			must(t, err)
			defer st.Free()
			must(t, d.GroupNormForward(gy, gx, gg, gbt, st, s))
			check(t, "y", gy, y, tolStrict)
			must(t, d.GroupNormBackwardData(gdx, gdy, gx, gg, st, s))
			check(t, "dx", gdx, dx, tolStrict)
			must(t, d.GroupNormBackwardParams(gdg, gdb, gdy, gx, gg, st, s))
			check(t, "dgamma", gdg, dg, tolStrict)
			check(t, "dbeta", gdb, dbt, tolStrict)
			// Without saved statistics the backward recomputes them.
			must(t, gdx.Fill(float32(math.NaN())))
			must(t, d.GroupNormBackwardData(gdx, gdy, gx, gg, nil, s))
			check(t, "dx (recomputed stats)", gdx, dx, tolStrict)
			// All three at once.
			for _, g := range []*Tensor{gdx, gdg, gdb} {
				must(t, g.Fill(float32(math.NaN())))
			}
			must(t, d.GroupNormBackward(gdx, gdg, gdb, gdy, gx, gg, st, s))
			check(t, "dx (combined)", gdx, dx, tolStrict)
			check(t, "dgamma (combined)", gdg, dg, tolStrict)
			check(t, "dbeta (combined)", gdb, dbt, tolStrict)
		})
	}
}

// The fused GroupNorm+SiLU against nn's GroupNorm followed by SiLU.
func TestOpGroupNormSiLU(t *testing.T) {
	d := device(t)
	shapes := []nn.GroupNormShape{
		{N: 1, C: 4, P: 3, Groups: 2, Eps: 1e-5},
		{N: 3, C: 64, P: 1024, Groups: 32, Eps: 1e-5},
		{N: 2, C: 16, P: 4096, Groups: 1, Eps: 1e-6},
		{N: 12, C: 64, P: 100, Groups: 32, Eps: 1e-5}, // vectorised
	}
	for i, s := range shapes {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 13))
			x, gamma, beta, dy := randn(rng, s.Len()), randn(rng, s.C), randn(rng, s.C), randn(rng, s.Len())
			for j := range x {
				x[j] = 1 + 2*x[j]
			}
			h := make([]float32, s.Len())
			nn.GroupNormForward(h, x, gamma, beta, s)
			y := make([]float32, s.Len())
			nn.SiLUForward(y, h)
			dh := make([]float32, s.Len())
			nn.SiLUBackward(dh, dy, h)
			dx := make([]float32, s.Len())
			nn.GroupNormBackwardData(dx, dh, x, gamma, s)
			dg, dbt := make([]float32, s.C), make([]float32, s.C)
			nn.GroupNormBackwardParams(dg, dbt, dh, x, s)

			gx, gg, gbt, gdy := upload(t, d, x), upload(t, d, gamma), upload(t, d, beta), upload(t, d, dy)
			gy, gdx, gdg, gdb := poisoned(t, d, s.Len()), poisoned(t, d, s.Len()), poisoned(t, d, s.C), poisoned(t, d, s.C)
			defer freeAll(gx, gg, gbt, gdy, gy, gdx, gdg, gdb)
			st, err := d.NewGroupNormStats(s)
			must(t, err)
			defer st.Free()
			must(t, d.GroupNormSiLUForward(gy, gx, gg, gbt, st, s))
			check(t, "y", gy, y, tolStrict)
			must(t, d.GroupNormSiLUBackwardData(gdx, gdy, gx, gg, gbt, st, s))
			check(t, "dx", gdx, dx, tolStrict)
			must(t, d.GroupNormSiLUBackwardParams(gdg, gdb, gdy, gx, gg, gbt, st, s))
			check(t, "dgamma", gdg, dg, tolStrict)
			check(t, "dbeta", gdb, dbt, tolStrict)
			if err := d.GroupNormSiLUForward(gy, gx, gg, gbt, nil, s); err == nil {
				t.Error("GroupNormSiLUForward without statistics: no error")
			}
		})
	}
}

func TestOpSiLU(t *testing.T) {
	d := device(t)
	for i, n := range []int{1, 1001, 1000, 1 << 20} { // odd sizes take the scalar kernels
		rng := rand.New(rand.NewPCG(uint64(i), 4))
		x, dy := randn(rng, n), randn(rng, n)
		for j := range x {
			x[j] *= 4
		}
		y, dx := make([]float32, n), make([]float32, n)
		nn.SiLUForward(y, x)
		nn.SiLUBackward(dx, dy, x)
		gx, gdy, gy, gdx := upload(t, d, x), upload(t, d, dy), poisoned(t, d, n), poisoned(t, d, n)
		must(t, d.SiLUForward(gy, gx))
		check(t, fmt.Sprintf("silu %d", n), gy, y, tolStrict)
		must(t, d.SiLUBackward(gdx, gdy, gx))
		check(t, fmt.Sprintf("silu backward %d", n), gdx, dx, tolStrict)
		freeAll(gx, gdy, gy, gdx)
	}
}

func TestOpLinear(t *testing.T) {
	shapes := []nn.LinearShape{{N: 1, In: 3, Out: 2}, {N: 7, In: 33, Out: 17}, {N: 256, In: 128, Out: 384}, {N: 1000, In: 64, Out: 64}}
	precisions(t, func(t *testing.T, tol float64) {
		d := device(t)
		for i, s := range shapes {
			t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(i), 5))
				x, w, b, dy := randn(rng, s.N*s.In), randn(rng, s.Out*s.In), randn(rng, s.Out), randn(rng, s.N*s.Out)
				y, dx, dw, db := make([]float32, s.N*s.Out), make([]float32, s.N*s.In), make([]float32, s.Out*s.In), make([]float32, s.Out)
				nn.LinearForward(y, x, w, b, s)
				nn.LinearBackwardData(dx, dy, w, s)
				nn.LinearBackwardParams(dw, db, dy, x, s)
				gx, gw, gb, gdy := upload(t, d, x), upload(t, d, w), upload(t, d, b), upload(t, d, dy)
				gy, gdx, gdw, gdb := poisoned(t, d, len(y)), poisoned(t, d, len(dx)), poisoned(t, d, len(dw)), poisoned(t, d, len(db))
				defer freeAll(gx, gw, gb, gdy, gy, gdx, gdw, gdb)
				must(t, d.LinearForward(gy, gx, gw, gb, s))
				check(t, "y", gy, y, tol)
				must(t, d.LinearBackwardData(gdx, gdy, gw, s))
				check(t, "dx", gdx, dx, tol)
				must(t, d.LinearBackwardParams(gdw, gdb, gdy, gx, s))
				check(t, "dw", gdw, dw, tol)
				check(t, "db", gdb, db, tolStrict)
			})
		}
	})
}

// sdpaCPU is the test's float64 reference for scaled dot-product attention, built
// on nn.Sgemm until trainer/nn exposes its attention math as plain functions.
func TestOpPermute(t *testing.T) {
	d := device(t)
	rng := rand.New(rand.NewPCG(7, 7))
	cases := []struct{ in, perm []int }{
		{[]int{2, 3, 4, 5}, []int{0, 2, 1, 3}}, // (B, L, H, D) -> (B, H, L, D)
		{[]int{6, 10, 7}, []int{0, 2, 1}},      // (N, C, P) -> (N, P, C)
		{[]int{4, 5, 3}, []int{2, 1, 0}},
		{[]int{9}, []int{0}},
		// the fast paths (ops_permute.go): 32x32 tiles with ragged edges,
		// float4 runs, a float4 copy
		{[]int{3, 37, 70}, []int{0, 2, 1}},
		{[]int{70, 33}, []int{1, 0}},
		{[]int{2, 5, 7, 12}, []int{0, 2, 1, 3}},
		{[]int{6, 9, 8}, []int{1, 0, 2}},
		{[]int{2, 1, 3, 4}, []int{0, 2, 1, 3}},
	}
	for _, c := range cases {
		n := numel(c.in)
		x := randn(rng, n)
		want := make([]float32, n)
		st := make([]int, len(c.in))
		acc := 1
		for i := len(c.in) - 1; i >= 0; i-- {
			st[i] = acc
			acc *= c.in[i]
		}
		od := make([]int, len(c.in))
		for k, p := range c.perm {
			od[k] = c.in[p]
		}
		idx := make([]int, len(c.in))
		for o := 0; o < n; o++ {
			r, src := o, 0
			for k := len(od) - 1; k >= 0; k-- {
				idx[k] = r % od[k]
				r /= od[k]
			}
			for k, p := range c.perm {
				src += idx[k] * st[p]
			}
			want[o] = x[src]
		}
		gx, gy := upload(t, d, x), poisoned(t, d, n)
		must(t, d.Permute(gy, gx, c.in, c.perm))
		check(t, fmt.Sprintf("permute %v %v", c.in, c.perm), gy, want, 0)
		freeAll(gx, gy)
	}
	gx, gy := upload(t, d, make([]float32, 6)), poisoned(t, d, 6)
	defer freeAll(gx, gy)
	if err := d.Permute(gy, gx, []int{2, 3}, []int{0, 0}); err == nil {
		t.Error("Permute accepted a repeated axis")
	}
}

func TestOpElementwise(t *testing.T) {
	d := device(t)
	rng := rand.New(rand.NewPCG(8, 8))
	// channel bias and its gradient
	cs := nn.ChannelShape{N: 3, C: 5, P: 77}
	x, e, dy := randn(rng, cs.Len()), randn(rng, cs.N*cs.C), randn(rng, cs.Len())
	y, de := make([]float32, cs.Len()), make([]float32, cs.N*cs.C)
	nn.AddChannelForward(y, x, e, cs)
	nn.AddChannelBackwardBias(de, dy, cs)
	gx, ge, gdy, gy, gde := upload(t, d, x), upload(t, d, e), upload(t, d, dy), poisoned(t, d, cs.Len()), poisoned(t, d, cs.N*cs.C)
	must(t, d.AddChannelForward(gy, gx, ge, cs))
	check(t, "add channel", gy, y, tolStrict)
	must(t, d.AddChannelBackwardBias(gde, gdy, cs))
	check(t, "add channel backward", gde, de, tolStrict)
	// add
	a := randn(rng, cs.Len())
	sum := make([]float32, cs.Len())
	nn.AddForward(sum, x, a)
	ga, gs := upload(t, d, a), poisoned(t, d, cs.Len())
	must(t, d.Add(gs, gx, ga))
	check(t, "add", gs, sum, tolStrict)
	// a multiple of 4 elements: the float4 kernel, as exact
	gx4, ga4, gs4 := upload(t, d, x[:1152]), upload(t, d, a[:1152]), poisoned(t, d, 1152)
	must(t, d.Add(gs4, gx4, ga4))
	check(t, "add (float4)", gs4, sum[:1152], 0)
	freeAll(gx, ge, gdy, gy, gde, ga, gs, gx4, ga4, gs4)

	// concat and split
	ccs := nn.ConcatShape{N: 2, CA: 3, CB: 5, P: 11}
	ca, cb := randn(rng, ccs.N*ccs.CA*ccs.P), randn(rng, ccs.N*ccs.CB*ccs.P)
	cy := make([]float32, len(ca)+len(cb))
	nn.ConcatForward(cy, ca, cb, ccs)
	da, db := make([]float32, len(ca)), make([]float32, len(cb))
	nn.ConcatBackward(da, db, cy, ccs)
	gca, gcb, gcy := upload(t, d, ca), upload(t, d, cb), poisoned(t, d, len(cy))
	gda, gdb := poisoned(t, d, len(ca)), poisoned(t, d, len(cb))
	must(t, d.ConcatForward(gcy, gca, gcb, ccs))
	check(t, "concat", gcy, cy, 0)
	must(t, d.ConcatBackward(gda, gdb, gcy, ccs))
	check(t, "concat backward a", gda, da, 0)
	check(t, "concat backward b", gdb, db, 0)
	freeAll(gca, gcb, gcy, gda, gdb)

	// timestep embedding
	ts := []float32{0, 1, 17, 500, 999}
	for _, dim := range []int{8, 33} {
		emb := make([]float32, len(ts)*dim)
		nn.TimestepEmbedding(emb, ts, dim)
		gt, gemb := upload(t, d, ts), poisoned(t, d, len(emb))
		must(t, d.TimestepEmbedding(gemb, gt, dim))
		check(t, fmt.Sprintf("timestep embedding dim %d", dim), gemb, emb, tolStrict)
		freeAll(gt, gemb)
	}
}

func TestOpResample(t *testing.T) {
	d := device(t)
	for i, s := range []nn.ResampleShape{{N: 1, C: 1, H: 1, W: 1}, {N: 2, C: 3, H: 5, W: 7}, {N: 4, C: 16, H: 32, W: 32}} {
		rng := rand.New(rand.NewPCG(uint64(i), 9))
		n := s.N * s.C * s.H * s.W
		x, dy := randn(rng, n), randn(rng, 4*n)
		y, dx := make([]float32, 4*n), make([]float32, n)
		nn.Upsample2xForward(y, x, s)
		nn.Upsample2xBackward(dx, dy, s)
		gx, gdy, gy, gdx := upload(t, d, x), upload(t, d, dy), poisoned(t, d, 4*n), poisoned(t, d, n)
		must(t, d.Upsample2xForward(gy, gx, s))
		check(t, fmt.Sprintf("upsample %+v", s), gy, y, 0)
		must(t, d.Upsample2xBackward(gdx, gdy, s))
		check(t, fmt.Sprintf("upsample backward %+v", s), gdx, dx, tolStrict)
		freeAll(gx, gdy, gy, gdx)
	}
}

func TestOpReduceAndMSE(t *testing.T) {
	d := device(t)
	rng := rand.New(rand.NewPCG(10, 10))
	for _, s := range []nn.FrameMSEShape{{B: 1, T: 2, E: 3, Skip: 1}, {B: 2, T: 5, E: 3 * 64, Skip: 1}, {B: 4, T: 25, E: 3 * 32 * 32, Skip: 1}, {B: 3, T: 4, E: 100, Skip: 0}} {
		n := s.B * s.T * s.E
		p, q := randn(rng, n), randn(rng, n)
		loss := nn.FrameMSE(p, q, s)
		dp := make([]float32, n)
		nn.FrameMSEBackward(dp, p, q, 0.7, s)
		gp, gq, gl, gdp := upload(t, d, p), upload(t, d, q), poisoned(t, d, 1), poisoned(t, d, n)
		must(t, d.FrameMSE(gl, gp, gq, s))
		check(t, fmt.Sprintf("mse %+v", s), gl, []float32{loss}, tolStrict)
		must(t, d.FrameMSEBackward(gdp, gp, gq, 0.7, s))
		check(t, fmt.Sprintf("mse backward %+v", s), gdp, dp, tolStrict)
		freeAll(gp, gq, gl, gdp)
	}
	// sum, mean, per-row and per-channel sums
	cs := nn.ChannelShape{N: 5, C: 7, P: 333}
	x := randn(rng, cs.Len())
	var tot float64
	rows := make([]float32, cs.N*cs.C)
	chans := make([]float32, cs.C)
	for i, v := range x {
		tot += float64(v)
		rows[i/cs.P] += v
		chans[(i/cs.P)%cs.C] += v
	}
	gx, gs, gm, gr, gc := upload(t, d, x), poisoned(t, d, 1), poisoned(t, d, 1), poisoned(t, d, len(rows)), poisoned(t, d, cs.C)
	defer freeAll(gx, gs, gm, gr, gc)
	must(t, d.Sum(gs, gx))
	check(t, "sum", gs, []float32{float32(tot)}, tolStrict)
	must(t, d.sumScaled(gm, gx, 1/float64(len(x))))
	check(t, "mean", gm, []float32{float32(tot / float64(len(x)))}, tolStrict)
	must(t, d.SumRows(gr, gx, cs.N*cs.C, cs.P))
	check(t, "sum rows", gr, rows, tolStrict)
	must(t, d.SumChannels(gc, gx, cs))
	check(t, "sum channels", gc, chans, tolStrict)
}
