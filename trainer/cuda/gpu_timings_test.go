//go:build gpu

package cuda

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// TimingsEnv names the file TestTimings writes its JSON results to; unset, it skips.
// bench/gpu_ops.sh sets it and bench/torch_ops.py times the same cases in PyTorch.
const TimingsEnv = "PIPELINE_CUDA_TIMINGS"

type timing struct {
	Op    string         `json:"op"`
	Pass  string         `json:"pass"`
	Prec  string         `json:"prec"`
	Impl  string         `json:"impl"` // cudnn or im2col for convolutions, else ours
	Shape map[string]int `json:"shape"`
	Flops float64        `json:"flops"`
	MS    float64        `json:"ms"`
	run   func() error
}

// medianMS times run with device events: warm-up, then the median of reps.
func medianMS(d *Device, run func() error, warm, reps int) (float64, error) {
	for i := 0; i < warm; i++ {
		if err := run(); err != nil {
			return 0, err
		}
	}
	start, err := d.NewEvent()
	if err != nil {
		return 0, err
	}
	defer start.Destroy()
	end, err := d.NewEvent()
	if err != nil {
		return 0, err
	}
	defer end.Destroy()
	ms := make([]float64, reps)
	for i := range ms {
		if err := start.Record(nil); err != nil {
			return 0, err
		}
		if err := run(); err != nil {
			return 0, err
		}
		if err := end.Record(nil); err != nil {
			return 0, err
		}
		v, err := Elapsed(start, end)
		if err != nil {
			return 0, err
		}
		ms[i] = float64(v)
	}
	sort.Float64s(ms)
	return ms[reps/2], nil
}

// benchTensor uploads n random values (never zeros: they can time faster than data).
func benchTensor(t *testing.T, d *Device, rng *rand.Rand, n int) *Tensor {
	return upload(t, d, randn(rng, n))
}

func TestTimings(t *testing.T) {
	out := os.Getenv(TimingsEnv)
	if out == "" {
		t.Skipf("set %s=FILE to time the ops", TimingsEnv)
	}
	d := device(t)
	rng := rand.New(rand.NewPCG(42, 42))
	T := func(n int) *Tensor { return benchTensor(t, d, rng, n) }
	var cases []timing
	add := func(op, pass string, gemm bool, shape map[string]int, flops float64, run func() error) {
		precs := []string{"fp32"}
		if gemm {
			precs = append(precs, "tf32")
		}
		impls := []string{"ours"}
		if op == "conv2d" {
			impls = []string{"im2col"}
			if on, _ := d.CUDNN(); on {
				impls = []string{"cudnn", "im2col"}
			}
		}
		for _, p := range precs {
			for _, im := range impls {
				cases = append(cases, timing{Op: op, Pass: pass, Prec: p, Impl: im, Shape: shape, Flops: flops, run: run})
			}
		}
	}

	// GEMM: the ceiling for everything built on cuBLAS.
	{
		m := 8192
		a, b, c := T(m*m), T(m*m), T(m*m)
		add("gemm", "fwd", true, map[string]int{"m": m, "n": m, "k": m}, 2*float64(m)*float64(m)*float64(m), func() error {
			return d.Gemm(Gemm{M: m, N: m, K: m, Alpha: 1, A: a.Ptr(), B: b.Ptr(), C: c.Ptr(), Batch: 1})
		})
	}
	for _, s := range []nn.Conv2DShape{
		{N: 100, C: 64, H: 64, W: 64, K: 64, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 100, C: 128, H: 32, W: 32, K: 128, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 100, C: 64, H: 64, W: 64, K: 64, KH: 3, KW: 3, Stride: 2, Pad: 1},
	} {
		s := s
		x, w, b, dy := T(s.InLen()), T(s.WeightLen()), T(s.K), T(s.OutLen())
		y, dx, dw, db := T(s.OutLen()), T(s.InLen()), T(s.WeightLen()), T(s.K)
		sh := map[string]int{"n": s.N, "c": s.C, "h": s.H, "w": s.W, "k": s.K, "kh": s.KH, "kw": s.KW, "stride": s.Stride, "pad": s.Pad}
		f := float64(s.FLOPs())
		add("conv2d", "fwd", true, sh, f, func() error { return d.Conv2DForward(y, x, w, b, s) })
		add("conv2d", "bwd_data", true, sh, f, func() error { return d.Conv2DBackwardData(dx, dy, w, s) })
		add("conv2d", "bwd_filter", true, sh, f, func() error { return d.Conv2DBackwardFilter(dw, db, dy, x, s) })
	}
	{
		s := nn.GroupNormShape{N: 100, C: 64, P: 64 * 64, Groups: 32, Eps: 1e-5}
		x, g, bt, dy := T(s.Len()), T(s.C), T(s.C), T(s.Len())
		y, dx, dg, db := T(s.Len()), T(s.Len()), T(s.C), T(s.C)
		st, err := d.NewGroupNormStats(s)
		must(t, err)
		sh := map[string]int{"n": s.N, "c": s.C, "p": s.P, "groups": s.Groups}
		add("groupnorm", "fwd", false, sh, 0, func() error { return d.GroupNormForward(y, x, g, bt, st, s) })
		add("groupnorm", "bwd", false, sh, 0, func() error {
			return d.GroupNormBackward(dx, dg, db, dy, x, g, st, s)
		})
	}
	{
		// Launch overhead: 100 small element-wise ops back to back, host time included.
		n := 4096
		x, y := T(n), T(n)
		add("silu100", "fwd", false, map[string]int{"n": n, "calls": 100}, 0, func() error {
			for i := 0; i < 100; i++ {
				if err := d.SiLUForward(y, x); err != nil {
					return err
				}
			}
			return nil
		})
	}
	{
		n := 100 * 64 * 64 * 64
		x, dy, y, dx := T(n), T(n), T(n), T(n)
		sh := map[string]int{"n": n}
		add("silu", "fwd", false, sh, 0, func() error { return d.SiLUForward(y, x) })
		add("silu", "bwd", false, sh, 0, func() error { return d.SiLUBackward(dx, dy, x) })
	}
	{
		s := nn.LinearShape{N: 100 * 256, In: 256, Out: 768}
		x, w, b, dy := T(s.N*s.In), T(s.Out*s.In), T(s.Out), T(s.N*s.Out)
		y, dx, dw, db := T(s.N*s.Out), T(s.N*s.In), T(s.Out*s.In), T(s.Out)
		sh := map[string]int{"n": s.N, "in": s.In, "out": s.Out}
		f := float64(s.FLOPs())
		add("linear", "fwd", true, sh, f, func() error { return d.LinearForward(y, x, w, b, s) })
		add("linear", "bwd", true, sh, 2*f, func() error {
			if err := d.LinearBackwardData(dx, dy, w, s); err != nil {
				return err
			}
			return d.LinearBackwardParams(dw, db, dy, x, s)
		})
	}
	{
		s := nn.ResampleShape{N: 100, C: 128, H: 32, W: 32}
		n := s.N * s.C * s.H * s.W
		x, y, dy, dx := T(n), T(4*n), T(4*n), T(n)
		sh := map[string]int{"n": s.N, "c": s.C, "h": s.H, "w": s.W}
		add("upsample", "fwd", false, sh, 0, func() error { return d.Upsample2xForward(y, x, s) })
		add("upsample", "bwd", false, sh, 0, func() error { return d.Upsample2xBackward(dx, dy, s) })
	}
	{
		s := nn.FrameMSEShape{B: 4, T: 25, E: 3 * 64 * 64, Skip: 1}
		n := s.B * s.T * s.E
		p, q, l, dp := T(n), T(n), T(1), T(n)
		sh := map[string]int{"b": s.B, "t": s.T, "e": s.E, "skip": s.Skip}
		add("mse", "fwd", false, sh, 0, func() error { return d.FrameMSE(l, p, q, s) })
		add("mse", "bwd", false, sh, 0, func() error { return d.FrameMSEBackward(dp, p, q, 1, s) })
	}

	for i := range cases {
		c := &cases[i]
		must(t, d.setTF32(c.Prec == "tf32"))
		if c.Op == "conv2d" {
			must(t, d.setCUDNN(c.Impl == "cudnn"))
		}
		_, calls := d.CUDNN()
		ms, err := medianMS(d, c.run, 3, 15)
		if err != nil {
			t.Fatalf("%s %s %s: %v", c.Op, c.Pass, c.Prec, err)
		}
		c.MS = ms
		if _, after := d.CUDNN(); c.Impl == "cudnn" && after == calls {
			c.Impl = "im2col (cuDNN declined)"
		}
		tf := ""
		if c.Flops > 0 {
			tf = fmt.Sprintf("%.1f TFLOP/s", c.Flops/ms/1e9)
		}
		t.Logf("%-10s %-10s %-4s %-7s %v: %.3f ms %s", c.Op, c.Pass, c.Prec, c.Impl, c.Shape, ms, tf)
	}
	must(t, d.setTF32(false))
	if d.dnn != nil {
		must(t, d.setCUDNN(true))
	}
	st := d.MemStats()
	t.Logf("allocator: %+v", st)
	for _, l := range d.convPlans() {
		t.Logf("cuDNN plan: %s", l)
	}
	b, err := json.MarshalIndent(cases, "", " ")
	must(t, err)
	must(t, os.WriteFile(out, b, 0o644))
}
