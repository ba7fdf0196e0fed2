//go:build gpu

package gpu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// tinySDStep is the inflated tiny SD inpainting UNet (perturbed temporal
// layers) with one batch of inputs and a target.
func tinySDStep(t *testing.T, gn string) (*model.UNet, model.Inputs, []float32) {
	t.Helper()
	base, err := model.LoadUNet(sdFixtures+"/sd-tiny-inpaint/unet", weights.Options{}, model.UNetOptions{})
	if err != nil {
		t.Fatal(err)
	}
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
	return u, in, randn(rng, B*T*u.Config.OutChannels*H*W, 1)
}

// A checkpointed training step (each block's forward recomputed in the
// backward pass) gives the plain step's loss and temporal gradients, with
// per-frame and joint group norms: recomputation runs the same kernels on
// the same inputs, so the results agree to float rounding (1e-5 relative
// asserted; the measured error is logged). Its device peak is lower, and
// a second step makes no cuMemAlloc call.
func TestSDCheckpointedGradsMatch(t *testing.T) {
	d := sdDevice(t, false)
	temporal := func(p model.ParamSpec) bool { return p.Temporal }
	for _, gn := range []string{model.GroupNormPerFrame, model.GroupNormJoint} {
		t.Run(gn, func(t *testing.T) {
			u, in, target := tinySDStep(t, gn)
			const B, T, H, W = 1, 3, 16, 16
			var loss [2]float32
			var grads [2][][]float32
			var peak [2]int64
			var names []string
			for k, ckpt := range []bool{false, true} {
				s, err := NewSDNet(d, u.Net, u.Params, B, T, H, W, SDOptions{Trainable: temporal, Checkpointing: ckpt})
				if err != nil {
					t.Fatal(err)
				}
				base := d.MemStats().InUse
				d.ResetPeak()
				if loss[k], err = s.TrainStep(in, target); err != nil {
					s.Close()
					t.Fatal(err)
				}
				peak[k] = d.MemStats().Peak - base
				names = names[:0]
				for _, q := range s.Trainable() {
					names = append(names, q.Name)
				}
				if grads[k], err = s.Grads(); err != nil {
					s.Close()
					t.Fatal(err)
				}
				before, inUse := s.MemStats().DriverOps, s.MemStats().InUse
				if _, err := s.TrainStep(in, target); err != nil {
					s.Close()
					t.Fatal(err)
				}
				if ops := s.MemStats().DriverOps - before; ops != 0 {
					t.Errorf("checkpointing %v: second step made %d cuMemAlloc calls", ckpt, ops)
				}
				if now := s.MemStats().InUse; now != inUse {
					t.Errorf("checkpointing %v: %d bytes in use after the second step, %d after the first", ckpt, now, inUse)
				}
				s.Close()
			}
			if le := relErr(loss[1:], loss[:1]); le > 1e-6 {
				t.Errorf("loss: checkpointed %.8g, plain %.8g", loss[1], loss[0])
			}
			worst := 0.0
			for i := range grads[0] {
				worst = max(worst, checkRel(t, "gradient of "+names[i], grads[1][i], grads[0][i], 1e-5))
			}
			t.Logf("%d gradients, worst rel err %.3g; activation peak plain %d B, checkpointed %d B", len(grads[0]), worst, peak[0], peak[1])
			if peak[1] >= peak[0] {
				t.Errorf("checkpointed peak %d B is not below the plain step's %d B", peak[1], peak[0])
			}
		})
	}
}

// In a half precision a checkpointed step with float32 boundaries and
// every fused attention's results kept from the first pass (the recompute
// widens the kept 16-bit output instead of running the attention) gives
// the plain step's gradients to float rounding (1e-5): the output
// projection reads that rounding either way. With the boundaries packed
// into 16 bits (the default) the recompute starts from inputs rounded
// once more: within 10 u of the type (bf16 4e-2, fp16 5e-3; measured on
// an H200, 2026-12-02: bf16 2.0e-2 on this fixture), half the precision's
// budget against float32 (sd_half_gpu_test.go: 20 u). Each makes no
// cuMemAlloc call in its second step.
func TestSDCheckpointedHalfGradsMatch(t *testing.T) {
	d := sdDevice(t, false)
	temporal := func(p model.ParamSpec) bool { return p.Temporal }
	u, in, target := tinySDStep(t, model.GroupNormPerFrame)
	const B, T, H, W = 1, 3, 16, 16
	for _, md := range []struct {
		p   Precision
		tol float64
	}{{BF16, 4e-2}, {FP16, 5e-3}} {
		t.Run(string(md.p), func(t *testing.T) {
			opts := []SDOptions{
				{Trainable: temporal, Precision: md.p},
				{Trainable: temporal, Precision: md.p, Checkpointing: true, CheckpointFloat32: true, CheckpointKeepAttention: 1},
				{Trainable: temporal, Precision: md.p, Checkpointing: true, CheckpointKeepAttention: 1},
			}
			var grads [3][][]float32
			for k, o := range opts {
				s, err := NewSDNet(d, u.Net, u.Params, B, T, H, W, o)
				if err != nil {
					t.Fatal(err)
				}
				for step := 0; step < 2; step++ {
					before := s.MemStats().DriverOps
					if _, err := s.TrainStep(in, target); err != nil {
						s.Close()
						t.Fatal(err)
					}
					if ops := s.MemStats().DriverOps - before; step == 1 && ops != 0 {
						t.Errorf("%+v: second step made %d cuMemAlloc calls", o, ops)
					}
				}
				if k > 0 && !slices.Contains(s.ck.keepAttn, true) {
					t.Fatal("no attention layer kept its results")
				}
				if grads[k], err = s.Grads(); err != nil {
					s.Close()
					t.Fatal(err)
				}
				s.Close()
			}
			w1, w2 := 0.0, 0.0
			for i := range grads[0] {
				w1 = max(w1, checkRel(t, "float32 boundaries, kept attention", grads[1][i], grads[0][i], 1e-5))
				w2 = max(w2, checkRel(t, "16-bit boundaries", grads[2][i], grads[0][i], md.tol))
			}
			t.Logf("%d gradients against the plain %s step: worst rel err %.3g (float32 boundaries, kept attention), %.3g (16-bit boundaries)", len(grads[0]), md.p, w1, w2)
		})
	}
}
