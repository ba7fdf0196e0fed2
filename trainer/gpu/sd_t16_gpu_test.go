//go:build gpu

package gpu

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// p3dTarget is the training target of the accuracy fixture, sin(0.37 i):
// bench/torch_half_accuracy.py uses the same.
func p3dTarget(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(math.Sin(0.37 * float64(i)))
	}
	return out
}

// halfMode is one set of the half precisions' switches.
type halfMode struct {
	name string
	p    Precision
	// t32: the trainable layers' products float32; lin: the temporal
	// linears' products 16-bit (1), float32 (-1) or the package's (0);
	// tconv32, convs32, attn32, bwdData32: the temporal convolutions, the
	// frozen convolutions, bf16 attention, the frozen layers'
	// backward-data products float32
	t32                                 bool
	lin                                 int
	tconv32, convs32, attn32, bwdData32 bool
	// saved: SDOptions.SavedPackMin (1: every saved value in 16 bits, sd_saved.go)
	saved int
	// tolerances (0: report only): loss; temporal gradients, worst tensor
	// and all together, against float32, and all together against float32
	// on the bf16-rounded frozen weights
	loss, worst, all, allRounded float64
}

func (m halfMode) set() func() {
	saved := t16Linear[m.p]
	if m.lin != 0 {
		t16Linear[m.p] = m.lin > 0
	}
	temporal16, t16Conv, halfConvs, bf16Attention, halfBackwardData = !m.t32, !m.tconv32, !m.convs32, !m.attn32, !m.bwdData32
	return func() {
		t16Linear[m.p] = saved
		temporal16, t16Conv, halfConvs, bf16Attention, halfBackwardData = true, true, true, true, true
	}
}

// gradErrs is the relative L2 error of every temporal gradient against
// want: the worst tensor's and all of them together.
func gradErrs(got, want [][]float32) (worst, all float64) {
	var num, den float64
	for i := range got {
		worst = math.Max(worst, relErr(got[i], want[i]))
		for j := range got[i] {
			d := float64(got[i][j]) - float64(want[i][j])
			num += d * d
			den += float64(want[i][j]) * float64(want[i][j])
		}
	}
	return worst, math.Sqrt(num / den)
}

// TestSDT16Accuracy measures where the half precisions' error comes from
// on the recipe's tiny pseudo-3D fixture (sd-tiny-pseudo3d, joint group
// norms, one clip of 4 frames: the same model, inputs and target as
// bench/torch_half_accuracy.py runs in PyTorch): loss and temporal
// gradients of each precision, with one source of rounding switched back
// to float32 at a time, against the CPU float32 step, and against the CPU
// float32 step on the frozen weights rounded to bfloat16 (the weights a
// bf16 backbone holds; the fixture's weights are float16 values, so
// float16 rounds none of them). Prints a table; asserts the defaults.
func TestSDT16Accuracy(t *testing.T) {
	d := sdDevice(t, false)
	u, err := model.LoadUNet(sdFixtures+"/sd-tiny-pseudo3d/unet", weights.Options{}, model.UNetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases, err := checkpoint.Read("../model/testdata/sd-golden/sd-tiny-pseudo3d-cases.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	x := cases.Tensors["p3d.sample"]
	in := model.Inputs{Input: x.Data, Timesteps: cases.Tensors["p3d.timestep"].Data, Context: cases.Tensors["p3d.context"].Data}
	B, T, H, W := 1, x.Shape[0], x.Shape[2], x.Shape[3]
	target := p3dTarget(T * u.Config.OutChannels * H * W)
	temporal := func(q *model.Param) bool { return q.Temporal }
	reference := func(p *model.Params) (float32, [][]float32, []float32) {
		tg, err := model.BuildNetTrain(u.Net, p, B, T, H, W, temporal)
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		if err := tg.SetContext(in.Context); err != nil {
			t.Fatal(err)
		}
		loss, err := tg.Step(in.Input, in.Timesteps, target)
		if err != nil {
			t.Fatal(err)
		}
		g := make([][]float32, len(tg.Trainable))
		for i := range g {
			g[i] = append([]float32(nil), tg.Grad(i)...)
		}
		out, err := model.InterpretInputs(u.Net, p, B, T, H, W, in)
		if err != nil {
			t.Fatal(err)
		}
		return loss, g, out
	}
	loss32, grad32, out32 := reference(u.Params)
	var gnorm float64
	for _, g := range grad32 {
		for _, v := range g {
			gnorm += float64(v) * float64(v)
		}
	}
	t.Logf("CPU float32: loss %.7g, %d temporal gradients, total norm %.6g", loss32, len(grad32), math.Sqrt(gnorm))
	rounded := u.Params.Clone()
	trainable := func(p model.ParamSpec) bool { return p.Temporal }
	for _, q := range rounded.List {
		if halfWeight(u.Net, BF16, trainable, q.Name) {
			for i, v := range q.Data {
				q.Data[i] = roundBF16(v)
			}
		}
	}
	lossR, gradR, outR := reference(rounded)
	wl, wg := gradErrs(gradR, grad32)
	t.Logf("CPU float32 on bf16-rounded frozen weights vs float32: loss %.3g, output %.3g, gradients worst %.3g, all %.3g",
		relErr([]float32{lossR}, []float32{loss32}), relErr(outR, out32), wl, wg)

	// Tolerances: fp16 within issue 16's 2e-2 on every temporal gradient
	// (PyTorch's autocast fp16 on this fixture: worst 1.16e-2, all 2.7e-3);
	// bf16 cannot be: rounding the frozen weights to bfloat16 alone moves
	// the float32 step's gradients by 4.3e-2 (worst) / 1.4e-2 (all), so
	// bf16 is held to PyTorch's own autocast bf16 error on the same model
	// (worst 8.4e-2, all 2.5e-2; bench/torch_half_accuracy.py, H200,
	// 2026-12-02) with a 1.25 margin for a different accumulation order
	// and rounding points, and to 2e-2 for all temporal gradients together
	// against the float32 step on the backbone it holds (the bf16-rounded
	// weights).
	modes := []halfMode{
		{name: "fp16", p: FP16, loss: 1e-3, worst: 2e-2, all: 2e-2},
		{name: "fp16 saved 16-bit", p: FP16, saved: 1, loss: 1e-3, worst: 2e-2, all: 2e-2},
		{name: "fp16 temporal f32", p: FP16, t32: true},
		{name: "fp16 temporal linears f32", p: FP16, lin: -1},
		{name: "bf16", p: BF16, loss: 1e-2, worst: bf16GradTol, all: 1.25 * torchBF16All, allRounded: 2e-2},
		{name: "bf16 saved 16-bit", p: BF16, saved: 1, loss: 1e-2, worst: bf16GradTol, all: 1.25 * torchBF16All, allRounded: 2e-2},
		{name: "bf16 temporal f32", p: BF16, t32: true},
		{name: "bf16 temporal linears 16-bit too", p: BF16, lin: 1},
		{name: "bf16 temporal linears 16-bit, tconv f32", p: BF16, lin: 1, tconv32: true},
		{name: "bf16 bwd-data f32", p: BF16, bwdData32: true},
		{name: "bf16 attention f32", p: BF16, attn32: true},
		{name: "bf16 convs f32", p: BF16, convs32: true},
		{name: "bf16 convs+attn+bwd-data f32", p: BF16, convs32: true, attn32: true, bwdData32: true},
		{name: "bf16 all f32 but linear weights", p: BF16, t32: true, convs32: true, attn32: true, bwdData32: true},
	}
	var rows []string
	for _, m := range modes {
		t.Run(strings.ReplaceAll(m.name, " ", "_"), func(t *testing.T) {
			defer m.set()()
			s, err := NewSDNet(d, u.Net, u.Params, B, T, H, W, SDOptions{Trainable: trainable, Precision: m.p, SavedPackMin: m.saved})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			out, err := s.Forward(in)
			if err != nil {
				t.Fatal(err)
			}
			loss, err := s.TrainStep(in, target)
			if err != nil {
				t.Fatal(err)
			}
			if m.saved > 0 {
				checkSavedPacked(t, s)
			}
			grads, err := s.Grads()
			if err != nil {
				t.Fatal(err)
			}
			le := relErr([]float32{loss}, []float32{loss32})
			worst, all := gradErrs(grads, grad32)
			worstR, allR := gradErrs(grads, gradR)
			rr := fmt.Sprintf("%.3g | %.3g", worstR, allR)
			if m.convs32 { // the reference rounds the convolution filters too
				rr = "- | -"
			}
			row := fmt.Sprintf("| %s | %.3g | %.3g | %.3g | %.3g | %s |", m.name, relErr(out[u.Net.Output], out32), le, worst, all, rr)
			t.Log(row)
			rows = append(rows, row)
			for _, c := range []struct {
				what     string
				got, tol float64
			}{{"loss", le, m.loss}, {"worst temporal gradient", worst, m.worst}, {"all temporal gradients", all, m.all},
				{"all temporal gradients vs the rounded-weight reference", allR, m.allRounded}} {
				if c.tol > 0 && !(c.got <= c.tol) {
					t.Errorf("%s: rel err %.3g > %.3g", c.what, c.got, c.tol)
				}
			}
		})
	}
	fmt.Println("Half precisions vs the CPU float32 step, sd-tiny-pseudo3d (joint norms), B=1 T=4 16x16; gradients: relative L2, worst tensor / all temporal together; the last two against float32 on bf16-rounded frozen weights")
	fmt.Println("| mode | output | loss | grad worst | grad all | grad worst (rounded ref) | grad all (rounded ref) |\n|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
}
