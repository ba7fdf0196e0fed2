//go:build gpu

package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// relErr is ‖a − b‖ / ‖b‖ in float64; NaN fails.
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// testParams returns parameters whose temporal layers are perturbed away
// from their identity/zero initialisation, so every temporal gradient is
// non-trivial.
func testParams(t *testing.T, cfg model.Config, seed uint64) *model.Params {
	t.Helper()
	p, err := model.NewParams(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, q := range p.TemporalParams() {
		for i := range q.Data {
			q.Data[i] += float32(rng.NormFloat64() * 0.05)
		}
	}
	return p
}

type batch struct{ input, timesteps, target []float32 }

func randomBatch(rng *rand.Rand, cfg model.Config, B, T, H, W int) batch {
	N := B * T
	ts := make([]float32, N)
	for b := 0; b < B; b++ {
		v := float32(rng.IntN(1000))
		for f := 0; f < T; f++ {
			ts[b*T+f] = v
		}
	}
	return batch{
		input:     randn(rng, N*cfg.InChannels*H*W, 1),
		timesteps: ts,
		target:    randn(rng, N*cfg.OutChannels*H*W, 1),
	}
}

// compare runs the CPU graph and the GPU step on the same weights and batch
// and checks the loss and every trainable gradient.
func compare(t *testing.T, cpu *model.TrainGraph, s *Step, bt batch, tol float64) {
	t.Helper()
	lc, err := cpu.Step(bt.input, bt.timesteps, bt.target)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := s.Run(bt.input, bt.timesteps, bt.target)
	if err != nil {
		t.Fatal(err)
	}
	if e := math.Abs(float64(lg-lc)) / math.Abs(float64(lc)); !(e < tol) {
		t.Errorf("loss: gpu %v cpu %v rel err %.3g", lg, lc, e)
	}
	if len(cpu.Trainable) != len(s.Trainable()) {
		t.Fatalf("trainable sets differ: cpu %d, gpu %d", len(cpu.Trainable), len(s.Trainable()))
	}
	worst, worstName := 0.0, ""
	for i, q := range cpu.Trainable {
		if s.Trainable()[i].Name != q.Name {
			t.Fatalf("trainable %d: cpu %s, gpu %s", i, q.Name, s.Trainable()[i].Name)
		}
		e := relErr(s.Grad(i), cpu.Grad(i))
		if !(e < tol) {
			t.Errorf("grad %s: rel err %.3g", q.Name, e)
		}
		if e > worst || math.IsNaN(e) {
			worst, worstName = e, q.Name
		}
	}
	t.Logf("loss %.6f (cpu %.6f); %d trainable grads, worst rel err %.3g (%s)", lg, lc, len(cpu.Trainable), worst, worstName)
}

func TestStepMatchesCPU(t *testing.T) {
	if ok, why := cuda.Available(); !ok {
		t.Fatalf("no GPU: %s", why)
	}
	cases := []struct {
		name       string
		cfg        model.Config
		video      bool
		B, T, H, W int
		tf32       bool
		tol        float64
	}{
		{"tiny-video", model.Tiny(), true, 2, 4, 16, 16, false, 1e-3},
		{"tiny-backbone", model.Tiny(), false, 2, 2, 16, 16, false, 1e-3},
		{"timelapse-video", model.Timelapse(), true, 1, 5, 16, 16, false, 1e-3},
		{"tiny-video-tf32", model.Tiny(), true, 2, 4, 16, 16, true, 3e-2},
		{"timelapse-video-T2", model.Timelapse(), true, 2, 2, 16, 16, false, 1e-3},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testParams(t, c.cfg, uint64(10+ci))
			cpu, err := model.BuildTrain(p, c.video, c.B, c.T, c.H, c.W)
			if err != nil {
				t.Fatal(err)
			}
			defer cpu.Close()
			s, err := NewStep(p, c.video, c.B, c.T, c.H, c.W, Options{TF32: c.tf32})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(uint64(ci), 7))
			compare(t, cpu, s, randomBatch(rng, c.cfg, c.B, c.T, c.H, c.W), c.tol)

			// A second and third step after an update: weights re-uploaded,
			// buffers reused, no new device allocation in steady state.
			for i, q := range s.Trainable() {
				g := s.Grad(i)
				for j := range q.Data {
					q.Data[j] -= 0.01 * g[j]
				}
			}
			if err := s.UploadWeights(); err != nil {
				t.Fatal(err)
			}
			compare(t, cpu, s, randomBatch(rng, c.cfg, c.B, c.T, c.H, c.W), c.tol)
			before := s.MemStats()
			compare(t, cpu, s, randomBatch(rng, c.cfg, c.B, c.T, c.H, c.W), c.tol)
			after := s.MemStats()
			if after.DriverOps != before.DriverOps {
				t.Errorf("steady-state step called cuMemAlloc %d times", after.DriverOps-before.DriverOps)
			}
			t.Logf("memory: peak %.1f MiB, reserved %.1f MiB", float64(after.Peak)/(1<<20), float64(after.Reserved)/(1<<20))

			// Forward only (the validator's Predict) against the CPU graph.
			fg, err := model.BuildForward(p, c.video, c.B, c.T, c.H, c.W)
			if err != nil {
				t.Fatal(err)
			}
			defer fg.Close()
			bt := randomBatch(rng, c.cfg, c.B, c.T, c.H, c.W)
			want, err := fg.Predict(bt.input, bt.timesteps)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Predict(bt.input, bt.timesteps)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(got, want); !(e < c.tol) {
				t.Errorf("predict: rel err %.3g", e)
			} else {
				t.Logf("predict: rel err %.3g", e)
			}
		})
	}
}

// TestFrozenWeightsUntouched checks that frozen weights on the device stay
// bit-identical to the host copy through steps.
func TestFrozenWeightsUntouched(t *testing.T) {
	cfg := model.Tiny()
	p := testParams(t, cfg, 3)
	s, err := NewStep(p, true, 1, 3, 16, 16, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2; i++ {
		bt := randomBatch(rng, cfg, 1, 3, 16, 16)
		if _, err := s.Run(bt.input, bt.timesteps, bt.target); err != nil {
			t.Fatal(err)
		}
	}
	checked := 0
	for _, q := range p.Backbone() {
		w, ok := s.weights[q.Name]
		if !ok {
			continue
		}
		got, err := w.ToHost()
		if err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if math.Float32bits(got[j]) != math.Float32bits(q.Data[j]) {
				t.Fatalf("frozen %s[%d] changed: %v -> %v", q.Name, j, q.Data[j], got[j])
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no frozen weights checked")
	}
	if _, ok := s.wgrads[p.Backbone()[0].Name]; ok {
		t.Fatal("a backbone weight has a gradient buffer")
	}
	fmt.Println("frozen weights checked:", checked)
}

// TestDeviceAdamWMatchesHost: two steps of the device optimizer give the
// weights trainer/optim gives on the host from the same gradients, and its
// state round-trips through the host format.
func TestDeviceAdamWMatchesHost(t *testing.T) {
	cfg := model.Tiny()
	p := testParams(t, cfg, 5)
	s, err := NewStep(p, true, 2, 3, 16, 16, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ocfg := optim.DefaultConfig()
	ocfg.LR, ocfg.ClipNorm = 1e-2, 0.5 // clipping active
	host := p.Clone()
	var hps []*optim.Param
	for _, q := range s.Trainable() {
		hq := host.Get(q.Name)
		hps = append(hps, &optim.Param{Name: q.Name, Shape: q.Shape, Data: hq.Data, NoDecay: len(q.Shape) == 1})
	}
	hopt, err := optim.New(ocfg, hps)
	if err != nil {
		t.Fatal(err)
	}
	dopt, err := NewDeviceAdamW(s, ocfg, func(name string) bool { return len(p.Get(name).Shape) == 1 })
	if err != nil {
		t.Fatal(err)
	}
	defer dopt.Free()
	s.hostGrads = true // this test reads the gradients on the host too
	rng := rand.New(rand.NewPCG(3, 4))
	for step := 0; step < 2; step++ {
		bt := randomBatch(rng, cfg, 2, 3, 16, 16)
		if _, err := s.Run(bt.input, bt.timesteps, bt.target); err != nil {
			t.Fatal(err)
		}
		hs, err := hopt.Step(s.Grads())
		if err != nil {
			t.Fatal(err)
		}
		ds, err := dopt.Step()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(hs.GradNorm-ds.GradNorm) > 1e-5*hs.GradNorm || hs.Clipped != ds.Clipped {
			t.Errorf("step %d: grad norm host %v (clipped %v), device %v (clipped %v)", step, hs.GradNorm, hs.Clipped, ds.GradNorm, ds.Clipped)
		}
	}
	if err := dopt.DownloadWeights(); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for _, q := range s.Trainable() {
		e := relErr(q.Data, host.Get(q.Name).Data)
		worst = max(worst, e)
		if !(e < 1e-5) {
			t.Errorf("%s: device AdamW vs host rel err %.3g", q.Name, e)
		}
	}
	st, err := dopt.State()
	if err != nil {
		t.Fatal(err)
	}
	if err := hopt.LoadState(st); err != nil {
		t.Fatalf("host optimizer cannot load the device state: %v", err)
	}
	if err := dopt.LoadState(hopt.State()); err != nil {
		t.Fatalf("device optimizer cannot load the host state: %v", err)
	}
	t.Logf("device vs host AdamW after 2 steps: worst weight rel err %.3g", worst)
}
