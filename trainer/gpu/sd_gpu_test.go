//go:build gpu

package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// The tiny SD fixtures (diffusers-made, see trainer/weights/testdata/PROVENANCE).
const sdFixtures = "../weights/testdata"

func sdDevice(t *testing.T, tf32 bool) *cuda.Device {
	t.Helper()
	if ok, why := cuda.Available(); !ok {
		t.Skip("no GPU: " + why)
	}
	d, err := cuda.Open(0, cuda.Options{TF32: tf32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func checkRel(t *testing.T, what string, got, want []float32, tol float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	e := relErr(got, want)
	if !(e <= tol) {
		t.Errorf("%s: rel err %.3g > %.0e", what, e, tol)
	}
	return e
}

// The GPU float32 training step of the inflated tiny SD inpainting UNet
// (per-frame and joint group norms, perturbed temporal layers) matches the
// CPU Gorgonia graph: forward output, loss and every temporal gradient to
// 1e-3 relative. The bfloat16 mode (bfloat16 frozen linear weights and
// attention operands, float32 accumulation) is checked at 3e-2: bfloat16
// keeps 8 significant bits (a relative rounding of 2^-9 = 2e-3 per operand)
// and the errors of a few dozen layers in a row add up. Measured on an H200
// (2026-12-01): forward 5.6e-3, loss 2.5e-4 to 4.7e-4, worst gradient
// 2.07e-2 (temporal attention to_k weights, whose gradient goes through the
// softmax derivative twice rounded); issue 16 asks for 2e-2, which this mode
// does not reach yet (float16 Q, K and P would cut the rounding by 8).
func TestSDUNetMatchesCPU(t *testing.T) {
	for _, mode := range []struct {
		name          string
		bf16, chunked bool // chunked: the cuBLAS attention instead of the fused one
		tol, lossTol  float64
	}{{"float32", false, false, 1e-3, 1e-4}, {"bf16", true, false, bf16GradTol, 1e-2}, {"bf16-chunked-attention", true, true, bf16GradTol, 1e-2}} { // bf16 convolutions too: tolerances in sd_half_gpu_test.go
		t.Run(mode.name, func(t *testing.T) { testSDUNet(t, mode.bf16, mode.chunked, mode.tol, mode.lossTol) })
	}
}

func testSDUNet(t *testing.T, bf16, chunked bool, tol, lossTol float64) {
	d := sdDevice(t, false)
	for _, gn := range []string{model.GroupNormPerFrame, model.GroupNormJoint} {
		t.Run(gn, func(t *testing.T) {
			u, in, target := tinySDStep(t, gn)
			const B, T, H, W = 1, 3, 16, 16
			want, err := model.InterpretInputs(u.Net, u.Params, B, T, H, W, in)
			if err != nil {
				t.Fatal(err)
			}
			tg, err := model.BuildNetTrain(u.Net, u.Params, B, T, H, W, func(q *model.Param) bool { return q.Temporal })
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			if err := tg.SetContext(in.Context); err != nil {
				t.Fatal(err)
			}
			cpuLoss, err := tg.Step(in.Input, in.Timesteps, target)
			if err != nil {
				t.Fatal(err)
			}

			s, err := NewSDNet(d, u.Net, u.Params, B, T, H, W, SDOptions{Trainable: func(p model.ParamSpec) bool { return p.Temporal }, BF16: bf16})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.flashOff = chunked
			if bf16 {
				for name := range s.halfW {
					if s.weights[name] != nil {
						t.Errorf("%s is kept in float32 too", name)
					}
				}
				t.Logf("%d frozen linear weights in bfloat16", len(s.halfW))
				if len(s.halfW) == 0 {
					t.Error("no weight is stored in bfloat16")
				}
			}
			out, err := s.Forward(in)
			if err != nil {
				t.Fatal(err)
			}
			e := checkRel(t, "forward output", out[u.Net.Output], want, tol)
			t.Logf("forward output rel err %.3g", e)
			loss, err := s.TrainStep(in, target)
			if err != nil {
				t.Fatal(err)
			}
			le := relErr([]float32{loss}, []float32{cpuLoss})
			t.Logf("loss GPU %.7g CPU %.7g rel err %.3g", loss, cpuLoss, le)
			if !(le <= lossTol) {
				t.Errorf("loss rel err %.3g > %.0e", le, lossTol)
			}
			grads, err := s.Grads()
			if err != nil {
				t.Fatal(err)
			}
			if len(grads) != len(tg.Trainable) {
				t.Fatalf("%d GPU gradients, %d CPU", len(grads), len(tg.Trainable))
			}
			worst, worstName := 0.0, ""
			for i, q := range tg.Trainable {
				if s.Trainable()[i].Name != q.Name {
					t.Fatalf("trainable %d: GPU %s, CPU %s", i, s.Trainable()[i].Name, q.Name)
				}
				if e := checkRel(t, "gradient of "+q.Name, grads[i], tg.Grad(i), tol); e > worst {
					worst, worstName = e, q.Name
				}
			}
			t.Logf("%d temporal gradients, worst rel err %.3g (%s)", len(grads), worst, worstName)
			// steady state: a second step allocates nothing from the driver
			before := s.MemStats().DriverOps
			if _, err := s.TrainStep(in, target); err != nil {
				t.Fatal(err)
			}
			if ops := s.MemStats().DriverOps - before; ops != 0 {
				t.Errorf("second step made %d cuMemAlloc calls", ops)
			}
		})
	}
}

// The VAE encoder and decoder and the CLIP text encoder on the GPU match
// the CPU interpreter (model.RunNet) to 1e-3 relative.
func TestSDVAEAndCLIPMatchCPU(t *testing.T) {
	d := sdDevice(t, false)
	m, err := weights.Open(sdFixtures + "/sd-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	vae, err := model.OpenVAE(m)
	if err != nil {
		t.Fatal(err)
	}
	clip, err := model.OpenCLIPText(m)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 5))
	const N, H, W = 2, 32, 32
	f := vae.Config.Downscale()
	cases := []struct {
		name string
		net  *model.Net
		p    *model.Params
		in   []float32
	}{
		{"vae encoder", vae.Encoder, vae.Params, randn(rng, N*vae.Config.InChannels*H*W, 0.5)},
		{"vae decoder", vae.Decoder, vae.Params, randn(rng, N*vae.Config.LatentChannels*(H/f)*(W/f), 1)},
	}
	L := clip.Config.MaxPositions
	ids := make([]float32, N*L)
	for i := range ids {
		ids[i] = float32(rng.IntN(clip.Config.VocabSize))
	}
	cases = append(cases, struct {
		name string
		net  *model.Net
		p    *model.Params
		in   []float32
	}{"clip text encoder", clip.Net, clip.Params, ids})
	for _, c := range cases {
		h, w := H, W
		if c.name == "clip text encoder" {
			h, w = 1, 1
		}
		want, err := model.RunNet(c.net, c.p, N, h, w, map[int][]float32{c.net.Input: c.in}, c.net.Output)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSDNet(d, c.net, c.p, N, 1, h, w, SDOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := s.Forward(model.Inputs{Input: c.in})
		s.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		e := checkRel(t, c.name, got[c.net.Output], want[c.net.Output], 1e-3)
		t.Logf("%s: rel err %.3g", c.name, e)
	}
}
