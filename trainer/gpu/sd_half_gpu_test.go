//go:build gpu

package gpu

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// Tolerances of the half precisions against the CPU float32 reference on
// the tiny fixtures (relative L2 error), in units of the unit roundoff u of
// the 16-bit type (float16 u = 2^-11 = 4.9e-4, bfloat16 u = 2^-8 = 3.9e-3).
// A 16-bit convolution rounds its input, filter and output, a linear its
// input and weight; the tiny nets chain a few dozen of them, whose errors add
// up (about sqrt(depth) u on random weights: 5-7 u for the forward
// outputs). Forward outputs: 10 u (fp16 5e-3, bf16 4e-2). The gradients of
// the trainable temporal layers flow back through every frozen layer, each
// rounding the incoming gradient once more, and the temporal convolutions
// (and in fp16 the temporal linears) run on 16-bit operands themselves
// (sd_t16.go), as PyTorch's autocast runs them. fp16: 20 u (1e-2), within
// issue 16's 2e-2. bf16 cannot reach 2e-2 on its worst tensor: rounding
// the frozen weights to bfloat16 alone moves the float32 step's worst
// temporal gradient by 4.3e-2 on the recipe's fixture (TestSDT16Accuracy);
// it is held to PyTorch's own autocast bf16 error on that fixture (worst
// tensor 8.41e-2, bench/torch_half_accuracy.py, H200 2026-12-02) times 1.25
// (a different accumulation order and rounding points): bf16GradTol.
// Measured on an H200 (2026-12-02, two runs, per-frame / joint; the worst
// tensor is a temporal norm or attention projection and varies by up to
// 20% between identical runs): fp16 5.2e-3-5.5e-3 / 5.2e-3-5.6e-3; bf16
// 5.8e-2-7.9e-2 / 5.1e-2-5.2e-2 (4.9e-2 / 4.0e-2 with the temporal layers
// float32); bf16 with float32 convolutions (the first bf16 mode) 3.5e-2-
// 3.9e-2 / 3.3e-2-3.4e-2 (2.0e-2 / 2.9e-2 with the temporal layers
// float32), checked at 1.5 times the worst of those.
const (
	torchBF16Worst = 8.41e-2 // PyTorch autocast bf16 vs its float32, sd-tiny-pseudo3d: worst temporal gradient
	torchBF16All   = 2.50e-2 // and all temporal gradients together
	bf16GradTol    = 1.25 * torchBF16Worst
)

var halfModes = []struct {
	name              string
	p                 Precision
	linears           bool // convolutions float32 (halfConvs off)
	fwd, grad, loss   float64
	vaeEnc, vaeDecode float64
}{
	{"fp16", FP16, false, 5e-3, 1e-2, 1e-3, 5e-3, 5e-3},
	{"bf16", BF16, false, 4e-2, bf16GradTol, 1e-2, 4e-2, 4e-2},
	{"bf16-linears", BF16, true, 3e-2, 6e-2, 1e-2, 4e-2, 4e-2},
}

// snapshotFrozen downloads every frozen parameter's stored bits (16-bit
// values as their raw float32 slots).
func snapshotFrozen(t *testing.T, s *SDNet) map[string][]uint32 {
	t.Helper()
	out := map[string][]uint32{}
	add := func(name string, data []float32) {
		b := make([]uint32, len(data))
		for i, v := range data {
			b[i] = math.Float32bits(v)
		}
		out[name] = b
	}
	for name, w := range s.halfW {
		h, err := w.ToHost()
		if err != nil {
			t.Fatal(err)
		}
		add(name, h)
	}
	for name, w := range s.weights {
		if s.p.trainable[name] {
			continue
		}
		h, err := w.ToHost()
		if err != nil {
			t.Fatal(err)
		}
		add(name, h)
	}
	return out
}

// The inflated tiny inpainting UNet in fp16 and bf16: forward output, loss
// and every temporal gradient against the CPU float32 reference; frozen
// weights bit-identical after two steps; no cuMemAlloc in the second step;
// the fp16 loss scale at its initial 2^16 and no step skipped.
func TestSDHalfUNet(t *testing.T) {
	d := sdDevice(t, false)
	base, err := model.LoadUNet(sdFixtures+"/sd-tiny-inpaint/unet", weights.Options{}, model.UNetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range halfModes {
		for _, gn := range []string{model.GroupNormPerFrame, model.GroupNormJoint} {
			t.Run(m.name+"/"+gn, func(t *testing.T) {
				halfConvs = !m.linears
				defer func() { halfConvs = true }()
				u, err := model.Inflate(base, model.UNetOptions{GroupNorm: gn}, 3)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(7, 7))
				for _, q := range u.Params.TemporalParams() {
					for i := range q.Data {
						q.Data[i] += float32(rng.NormFloat64() * 0.05)
					}
				}
				const B, T, H, W = 1, 3, 16, 16
				in := model.Inputs{
					Input:     randn(rng, B*T*u.Config.InChannels*H*W, 1),
					Timesteps: []float32{400, 400, 400},
					Context:   randn(rng, B*T*model.ContextTokens*u.Config.CrossAttentionDim, 1),
				}
				target := randn(rng, B*T*u.Config.OutChannels*H*W, 1)
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
				// bf16: every saved value in 16 bits (the full-size default
				// packs the large ones: sd_saved.go; fp16's packed step is
				// TestSDT16Accuracy's)
				o := SDOptions{Trainable: func(p model.ParamSpec) bool { return p.Temporal }, Precision: m.p}
				if m.p == BF16 {
					o.SavedPackMin = 1
				}
				s, err := NewSDNet(d, u.Net, u.Params, B, T, H, W, o)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				convs := 0
				for _, l := range u.Net.Layers {
					if (l.Kind == model.Conv2D || l.Kind == model.Conv2DPadEnd) && s.halfW[l.Params[0]] != nil {
						convs++
					}
				}
				t.Logf("%d frozen weights in 16 bits (%d convolutions)", len(s.halfW), convs)
				if (convs == 0) != m.linears {
					t.Errorf("%d convolution filters stored in 16 bits", convs)
				}
				for name := range s.halfW {
					if s.weights[name] != nil {
						t.Errorf("%s is kept in float32 too", name)
					}
				}
				before := snapshotFrozen(t, s)
				out, err := s.Forward(in)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("forward output rel err %.3g", checkRel(t, "forward output", out[u.Net.Output], want, m.fwd))
				loss, err := s.TrainStep(in, target)
				if err != nil {
					t.Fatal(err)
				}
				if m.p == BF16 {
					checkSavedPacked(t, s)
				}
				le := relErr([]float32{loss}, []float32{cpuLoss})
				t.Logf("loss GPU %.7g CPU %.7g rel err %.3g", loss, cpuLoss, le)
				if !(le <= m.loss) {
					t.Errorf("loss rel err %.3g > %.0e", le, m.loss)
				}
				if sc, skipped := s.LossScale(); skipped || (m.p == FP16 && sc != lossScaleInit) || (m.p != FP16 && sc != 1) {
					t.Errorf("loss scale %v, skipped %v", sc, skipped)
				}
				grads, err := s.Grads()
				if err != nil {
					t.Fatal(err)
				}
				worst, worstName := 0.0, ""
				for i, q := range tg.Trainable {
					if s.Trainable()[i].Name != q.Name {
						t.Fatalf("trainable %d: GPU %s, CPU %s", i, s.Trainable()[i].Name, q.Name)
					}
					if e := checkRel(t, "gradient of "+q.Name, grads[i], tg.Grad(i), m.grad); e > worst {
						worst, worstName = e, q.Name
					}
				}
				t.Logf("%d temporal gradients, worst rel err %.3g (%s)", len(grads), worst, worstName)
				ops := s.MemStats().DriverOps
				if _, err := s.TrainStep(in, target); err != nil {
					t.Fatal(err)
				}
				if n := s.MemStats().DriverOps - ops; n != 0 {
					t.Errorf("second step made %d cuMemAlloc calls", n)
				}
				after := snapshotFrozen(t, s)
				for name, b := range before {
					a := after[name]
					for i := range b {
						if a[i] != b[i] {
							t.Fatalf("frozen %s changed at %d after two steps", name, i)
						}
					}
				}
				if m.p == FP16 {
					testSkipOnOverflow(t, s, in, target)
				}
			})
		}
	}
}

// testSkipOnOverflow: a loss scale that overflows float16 skips the step:
// zero gradients, the scale halved; the next step at the halved scale is
// clean again only if it fits (here it does not either: 2^126).
func testSkipOnOverflow(t *testing.T, s *SDNet, in model.Inputs, target []float32) {
	s.scale.scale = 0x1p127
	if _, err := s.TrainStep(in, target); err != nil {
		t.Fatal(err)
	}
	sc, skipped := s.LossScale()
	if !skipped || sc != 0x1p126 {
		t.Fatalf("after an overflow: scale %v, skipped %v; want 2^126, true", sc, skipped)
	}
	grads, err := s.Grads()
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range grads {
		for _, v := range g {
			if v != 0 {
				t.Fatalf("gradient %d of a skipped step is not zero", i)
			}
		}
	}
	s.scale.scale = lossScaleInit
	if _, err := s.TrainStep(in, target); err != nil {
		t.Fatal(err)
	}
	if _, skipped := s.LossScale(); skipped {
		t.Error("a step at 2^16 after a skipped one was skipped")
	}
}

// The tiny VAE encoder and decoder in each precision against the CPU
// float32 interpreter.
func TestSDHalfVAE(t *testing.T) {
	m, err := weights.Open(sdFixtures + "/sd-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	vae, err := model.OpenVAE(m)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 5))
	const N, H, W = 2, 32, 32
	f := vae.Config.Downscale()
	enc := randn(rng, N*vae.Config.InChannels*H*W, 0.5)
	dec := randn(rng, N*vae.Config.LatentChannels*(H/f)*(W/f), 1)
	wantE, err := model.RunNet(vae.Encoder, vae.Params, N, H, W, map[int][]float32{vae.Encoder.Input: enc}, vae.Encoder.Output)
	if err != nil {
		t.Fatal(err)
	}
	wantD, err := model.RunNet(vae.Decoder, vae.Params, N, H, W, map[int][]float32{vae.Decoder.Input: dec}, vae.Decoder.Output)
	if err != nil {
		t.Fatal(err)
	}
	type mode struct {
		p        Precision
		tf32     bool
		enc, dec float64
	}
	modes := []mode{{FP32, false, 1e-3, 1e-3}, {TF32, true, 1e-2, 1e-2}}
	for _, h := range halfModes {
		if !h.linears {
			modes = append(modes, mode{h.p, false, h.vaeEnc, h.vaeDecode})
		}
	}
	for _, md := range modes {
		t.Run(string(md.p), func(t *testing.T) {
			d := sdDevice(t, md.tf32)
			for _, c := range []struct {
				name string
				net  *model.Net
				in   []float32
				want []float32
				tol  float64
			}{{"encoder", vae.Encoder, enc, wantE[vae.Encoder.Output], md.enc}, {"decoder", vae.Decoder, dec, wantD[vae.Decoder.Output], md.dec}} {
				s, err := NewSDNet(d, c.net, vae.Params, N, 1, H, W, SDOptions{Precision: md.p})
				if err != nil {
					t.Fatal(err)
				}
				got, err := s.Forward(model.Inputs{Input: c.in})
				s.Close()
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s %s: rel err %.3g", md.p, c.name, checkRel(t, c.name, got[c.net.Output], c.want, c.tol))
			}
		})
	}
}

// TestSDVAEFullSizeVsTorch compares the SD-size VAE (random weights
// rounded to float16, made by bench/vae_ref.py with diffusers) with
// PyTorch's outputs on the same card: PIPELINE_SD_VAE_REF names the folder
// (vae/ and cases.safetensors: the image, PyTorch's float32 (TF32 off) and
// float16 moments and decoded images). Tolerance: our float32 run within
// 1e-3 of PyTorch's float32; our fp16 run no further from PyTorch's
// float32 than twice PyTorch's own float16 run is ("within float16
// rounding": both round the same operands at the same layers; twice
// allows a different accumulation order and rounding points), bf16
// within twice that again times 8 (3 fewer bits).
func TestSDVAEFullSizeVsTorch(t *testing.T) {
	dir := os.Getenv("PIPELINE_SD_VAE_REF")
	if dir == "" {
		t.Skip("PIPELINE_SD_VAE_REF names the folder bench/vae_ref.py wrote")
	}
	m, err := weights.Open(dir + "/vae")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	vae, err := model.OpenVAE(m)
	if err != nil {
		t.Fatal(err)
	}
	cases, err := checkpoint.Read(dir + "/cases.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	img := cases.Tensors["image"]
	N, H, W := img.Shape[0], img.Shape[2], img.Shape[3]
	m32, d32 := cases.Tensors["moments32"].Data, cases.Tensors["decoded32"].Data
	torchE := relErr(cases.Tensors["moments16"].Data, m32)
	torchD := relErr(cases.Tensors["decoded16"].Data, d32)
	t.Logf("PyTorch float16 vs float32: moments %.3g, decoded %.3g", torchE, torchD)
	z := cases.Tensors["latent"]
	for _, md := range []struct {
		p        Precision
		enc, dec float64
	}{{FP32, 1e-3, 1e-3}, {FP16, 2 * torchE, 2 * torchD}, {BF16, 16 * torchE, 16 * torchD}} {
		t.Run(string(md.p), func(t *testing.T) {
			d := sdDevice(t, false)
			s, err := NewSDNet(d, vae.Encoder, vae.Params, N, 1, H, W, SDOptions{Precision: md.p})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Forward(model.Inputs{Input: img.Data})
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			ge := got[vae.Encoder.Output]
			t.Logf("%s moments: vs PyTorch float32 %.3g (tolerance %.3g), vs PyTorch float16 %.3g", md.p,
				checkRel(t, "moments", ge, m32, md.enc), md.enc, relErr(ge, cases.Tensors["moments16"].Data))
			s, err = NewSDNet(d, vae.Decoder, vae.Params, N, 1, H, W, SDOptions{Precision: md.p})
			if err != nil {
				t.Fatal(err)
			}
			got, err = s.Forward(model.Inputs{Input: z.Data})
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			gd := got[vae.Decoder.Output]
			t.Logf("%s decoded: vs PyTorch float32 %.3g (tolerance %.3g), vs PyTorch float16 %.3g", md.p,
				checkRel(t, "decoded", gd, d32, md.dec), md.dec, relErr(gd, cases.Tensors["decoded16"].Data))
		})
	}
}
