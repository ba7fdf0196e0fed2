//go:build gpu

package gpu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// TestTrainableTemporalBench times the trainable temporal layers at SD
// size (B=1, T=25, bfloat16 operands), the earlier passes against
// tconv_fast.go's, per shape of the full-size pseudo-3D UNet, and checks
// that both agree. PIPELINE_TCONV_BENCH=1 runs it.
func TestTrainableTemporalBench(t *testing.T) {
	if os.Getenv("PIPELINE_TCONV_BENCH") != "1" {
		t.Skip("PIPELINE_TCONV_BENCH=1 runs the temporal-layer benchmark")
	}
	dev := sdDevice(t, true)
	k, err := openKernels(dev)
	if err != nil {
		t.Fatal(err)
	}
	tc := gpuTconv{&Step{dev: dev, k: k}}
	rng := rand.New(rand.NewPCG(7, 8))
	// inputs tile one draw of 2^20 values from a random offset (drawing
	// 65M values per tensor would take longer than the timing)
	pool := randn(rng, 1<<20, 1)
	tensor := func(n int) *cuda.Tensor {
		x, err := dev.NewTensor(n)
		if err != nil {
			t.Fatal(err)
		}
		h := make([]float32, n)
		for i, o := 0, rng.IntN(len(pool)); i < n; i += len(pool) {
			copy(h[i:], pool[o:])
			o = 0
		}
		if err := x.Upload(h); err != nil {
			t.Fatal(err)
		}
		return x
	}
	out := func(n int) *cuda.Tensor {
		x, err := dev.NewTensor(n)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ms := func(f func() error) float64 {
		for i := 0; i < 3; i++ {
			must(f())
		}
		must(dev.Sync())
		const n = 10
		st := time.Now()
		for i := 0; i < n; i++ {
			must(f())
		}
		must(dev.Sync())
		return float64(time.Since(st).Microseconds()) / 1000 / n
	}
	host := func(x *cuda.Tensor) []float32 {
		h, err := x.ToHost()
		must(err)
		return h
	}
	const bt = cuda.TypeBF16
	ops := tconvOps(bt)
	half := func(x *cuda.Tensor) *cuda.Tensor {
		h, err := dev.NewHalf(x.Len())
		must(err)
		must(dev.ToHalf(h, x, bt))
		return h
	}

	var totOld, totNew [2]float64
	fmt.Println("| temporal conv C@P x count | fwd old | fwd new | bwd old | bwd new | rel err y / dx / dw / db |")
	fmt.Println("|---|---:|---:|---:|---:|---|")
	for _, c := range []struct{ c, p, n int }{{1280, 64, 18}, {1280, 256, 15}, {640, 1024, 14}, {320, 4096, 14},
		{640, 256, 1}, {640, 4096, 1}, {4, 4096, 1}, {320, 1024, 1}, {1280, 1024, 1}} {
		ts := nn.TemporalConvShape{B: 1, T: 25, C: c.c, K: c.c, P: c.p}
		x, w, b, dy := tensor(ts.InLen()), tensor(ts.WeightLen()), tensor(ts.K), tensor(ts.OutLen())
		yo, yn, dxo, dxn := out(ts.OutLen()), out(ts.OutLen()), out(ts.InLen()), out(ts.InLen())
		dwo, dwn, dbo, dbn := out(ts.WeightLen()), out(ts.WeightLen()), out(ts.K), out(ts.K)
		weight := func(data bool) *cuda.Tensor {
			f := out(ts.K * 3 * ts.C)
			defer f.Free()
			if data {
				must(tc.wdata(f.Ptr(), w.Ptr(), ts.K, ts.C))
			} else {
				must(tc.wfwd(f.Ptr(), w.Ptr(), ts.K, ts.C))
			}
			return half(f)
		}
		fwdOld := func() error {
			xh, wh := half(x), weight(false)
			defer xh.Free()
			defer wh.Free()
			must(tconvGemm3(tc, ops, yo.Ptr(), xh.Ptr(), wh.Ptr(), ts.K, ts.C, ts.B, ts.T, ts.P))
			return tc.bias(yo.Ptr(), b.Ptr(), int64(ts.B*ts.T), ts.K, ts.P)
		}
		fwdNew := func() error { return tconvForwardHalf(tc, ops, yn.Ptr(), x.Ptr(), w.Ptr(), b.Ptr(), ts) }
		bwdOld := func() error {
			dyh, wd := half(dy), weight(true)
			defer dyh.Free()
			must(tconvGemm3(tc, ops, dxo.Ptr(), dyh.Ptr(), wd.Ptr(), ts.C, ts.K, ts.B, ts.T, ts.P))
			wd.Free()
			xh := half(x)
			defer xh.Free()
			must(tconvBackwardFilterOps(tc, ops, dwo.Ptr(), dyh.Ptr(), xh.Ptr(), ts))
			return dev.SumChannels(dbo, dy, nn.ChannelShape{N: ts.B * ts.T, C: ts.K, P: ts.P})
		}
		bwdNew := func() error {
			g, err := tconvSplitGrad(tc, ops, dy.Ptr(), ts, true, true, true)
			must(err)
			defer g.free()
			wd := weight(true)
			must(g.data(tc, dxn.Ptr(), wd.Ptr()))
			wd.Free()
			must(g.filter(tc, dwn.Ptr(), x.Ptr()))
			return g.bias(tc, dbn.Ptr())
		}
		r := [4]float64{ms(fwdOld), ms(fwdNew), ms(bwdOld), ms(bwdNew)}
		totOld[0] += float64(c.n) * r[0]
		totNew[0] += float64(c.n) * r[1]
		totOld[1] += float64(c.n) * r[2]
		totNew[1] += float64(c.n) * r[3]
		fmt.Printf("| %d@%d x %d | %.3f | %.3f | %.3f | %.3f | %.1e / %.1e / %.1e / %.1e |\n", c.c, c.p, c.n, r[0], r[1], r[2], r[3],
			relErr(host(yn), host(yo)), relErr(host(dxn), host(dxo)), relErr(host(dwn), host(dwo)), relErr(host(dbn), host(dbo)))
		for _, x := range []*cuda.Tensor{x, w, b, dy, yo, yn, dxo, dxn, dwo, dwn, dbo, dbn} {
			x.Free()
		}
	}
	fmt.Printf("| temporal conv total (x count) | %.2f | %.2f | %.2f | %.2f | |\n\n", totOld[0], totNew[0], totOld[1], totNew[1])

	// temporal linears (float32, TF32): q, k, v share an input (the first
	// writes its gradient, two accumulate), to_out has a bias
	totOld, totNew = [2]float64{}, [2]float64{}
	fmt.Println("| temporal linear C@rows x blocks | q,k,v,out bwd old | new | dW old | dW new | db old | db new | rel err dx / dw / db |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---|")
	for _, c := range []struct{ c, p, n int }{{320, 4096, 5}, {640, 1024, 5}, {1280, 256, 5}, {1280, 64, 1}} {
		ls := nn.LinearShape{N: 25 * c.p, In: c.c, Out: c.c}
		x, w, dy := tensor(ls.N*ls.In), tensor(ls.Out*ls.In), tensor(ls.N*ls.Out)
		dxo, dxn, dwo, dwn, dbo, dbn := out(ls.N*ls.In), out(ls.N*ls.In), out(ls.Out*ls.In), out(ls.Out*ls.In), out(ls.Out), out(ls.Out)
		// dx of q, k, v summed into dxo / dxn; to_out's dx a fresh buffer
		oldBlock := func() error {
			var acc *cuda.Tensor
			for i := 0; i < 4; i++ {
				dx, err := dev.NewTensor(ls.N * ls.In)
				must(err)
				must(dev.LinearBackwardData(dx, dy, w, ls))
				switch i {
				case 0:
					acc = dx
				case 1, 2:
					must(k.accumulate(acc.Ptr(), dx.Ptr(), int64(dx.Len())))
					dx.Free()
				default:
					dx.Free()
				}
				var db *cuda.Tensor
				if i == 3 {
					db = dbo
				}
				must(dev.LinearBackwardParams(dwo, db, dy, x, ls))
			}
			dxo.Free()
			dxo = acc
			return nil
		}
		newBlock := func() error {
			for i := 0; i < 4; i++ {
				dx, beta := dxn, float32(0)
				switch i {
				case 0:
					dxn.Free()
					dx, err = dev.NewTensor(ls.N * ls.In)
					must(err)
					dxn = dx
				case 1, 2:
					beta = 1
				default:
					dx, err = dev.NewTensor(ls.N * ls.In)
					must(err)
				}
				must(dev.Gemm(cuda.Gemm{M: ls.N, N: ls.In, K: ls.Out, Alpha: 1, Beta: beta, A: dy.Ptr(), B: w.Ptr(), C: dx.Ptr(), Batch: 1}))
				if i == 3 {
					dx.Free()
				}
				must(linearWeightGrad(tc, tconvF32, dwn.Ptr(), dy.Ptr(), x.Ptr(), ls.N, ls.Out, ls.In))
				if i == 3 {
					must(linearBiasGrad(tc, dbn.Ptr(), dy.Ptr(), ls.N, ls.Out))
				}
			}
			return nil
		}
		r := [6]float64{ms(oldBlock), ms(newBlock),
			ms(func() error { return dev.LinearBackwardParams(dwo, nil, dy, x, ls) }),
			ms(func() error { return linearWeightGrad(tc, tconvF32, dwn.Ptr(), dy.Ptr(), x.Ptr(), ls.N, ls.Out, ls.In) }),
			ms(func() error { return dev.SumChannels(dbo, dy, nn.ChannelShape{N: ls.N, C: ls.Out, P: 1}) }),
			ms(func() error { return linearBiasGrad(tc, dbn.Ptr(), dy.Ptr(), ls.N, ls.Out) })}
		// one block each for the comparison (the timing loops ran the blocks many times)
		must(oldBlock())
		must(newBlock())
		totOld[1] += float64(c.n) * r[0]
		totNew[1] += float64(c.n) * r[1]
		fmt.Printf("| %d@%d x %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.1e / %.1e / %.1e |\n", c.c, ls.N, c.n, r[0], r[1], r[2], r[3], r[4], r[5],
			relErr(host(dxn), host(dxo)), relErr(host(dwn), host(dwo)), relErr(host(dbn), host(dbo)))
		for _, x := range []*cuda.Tensor{x, w, dy, dxo, dxn, dwo, dwn, dbo, dbn} {
			x.Free()
		}
	}
	fmt.Printf("| temporal linear bwd total (x blocks) | %.2f | %.2f | | | | | |\n", totOld[1], totNew[1])
}
