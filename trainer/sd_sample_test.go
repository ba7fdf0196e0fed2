package trainer

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// fakeUNet predicts a constant per half (unconditional, then text) and
// records what it was given.
type fakeUNet struct {
	halves, frames, fl int
	uncond, text       float32
	ctx, lastIn        []float32
	lastT              []float32
}

func (f *fakeUNet) SetContext(c []float32) error { f.ctx = append([]float32(nil), c...); return nil }
func (f *fakeUNet) Close()                       {}
func (f *fakeUNet) Predict(in, ts []float32) ([]float32, error) {
	f.lastIn, f.lastT = append([]float32(nil), in...), append([]float32(nil), ts...)
	out := make([]float32, f.halves*f.frames*f.fl)
	for i := range out {
		out[i] = f.text
		if f.halves == 2 && i < f.frames*f.fl {
			out[i] = f.uncond
		}
	}
	return out, nil
}

// One guided DDIM step: the net sees both halves with the same mask (0)
// and image channels, the negative prompt's context on the first half and
// the prompt's on the second, and the step uses eps_u + g (eps_t - eps_u).
func TestSDGuidance(t *testing.T) {
	sc := diffusion.SD15Scheduler()
	sched, _ := sc.Schedule()
	sm := &sdModel{UNet: &model.UNet{Config: model.UNetConfig{OutChannels: 4}}, Scheduler: sc, Sched: sched}
	const T, H, W, fl = 3, 2, 2, 16
	f := &fakeUNet{frames: T, fl: fl, uncond: 0.2, text: 0.5}
	d := &sdDenoise{sm: sm, build: func(halves, frames, h, w int) (sdForward, error) { f.halves = halves; return f, nil }}
	cond := make([]float32, fl)
	for i := range cond {
		cond[i] = float32(i)
	}
	text, uncond := []float32{1, 1}, []float32{-1, -1}
	x, err := d.run(context.Background(), sdSampling{Frames: T, Steps: 1, Guidance: 3, Seed: 9, Cond: cond, Text: text, Uncond: uncond, H: H, W: W})
	if err != nil {
		t.Fatal(err)
	}
	if f.halves != 2 {
		t.Fatalf("%d halves with guidance 3", f.halves)
	}
	for i := 0; i < 2*T; i++ {
		want := float32(1)
		if i < T {
			want = -1
		}
		if f.ctx[2*i] != want {
			t.Fatalf("frame %d of the batch has context %v, want %v", i, f.ctx[2*i], want)
		}
		in := f.lastIn[i*9*H*W : (i+1)*9*H*W]
		for j := 0; j < H*W; j++ {
			if in[fl+j] != 0 {
				t.Fatal("mask channel not 0")
			}
		}
		for j := range cond {
			if in[fl+H*W+j] != cond[j] {
				t.Fatal("image channels differ from the still's latent")
			}
		}
		if ts, _ := sc.DDIMTimesteps(1); f.lastT[i] != float32(ts[0]) {
			t.Fatalf("frame %d at timestep %v, want %d", i, f.lastT[i], ts[0])
		}
	}
	// frame 0 is the still; frames 1.. moved from their initial noise with
	// eps = 0.2 + 3 (0.5 - 0.2) = 1.1
	rng := rand.New(rand.NewPCG(9, 0x7364))
	x0 := make([]float32, T*fl)
	for i := range x0 {
		x0[i] = float32(rng.NormFloat64())
	}
	ts, _ := sc.DDIMTimesteps(1)
	want := append([]float32(nil), x0...)
	eps := make([]float32, len(want))
	for i := range eps {
		eps[i] = 1.1
	}
	_ = sc.DDIMStep(sched, want, eps, ts[0], sc.DDIMPrev(ts[0], 1), 0, nil)
	for i := fl; i < len(x); i++ {
		if math.Abs(float64(x[i]-want[i])) > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("x[%d] = %v, want %v (guided eps 1.1)", i, x[i], want[i])
		}
	}
	for i := 0; i < fl; i++ {
		if x[i] != cond[i] {
			t.Fatalf("frame 0 is not the still")
		}
	}
	// guidance 1: one half, the prompt's context only
	if _, err := d.run(context.Background(), sdSampling{Frames: T, Steps: 1, Guidance: 1, Seed: 9, Cond: cond, Text: text, Uncond: uncond, H: H, W: W}); err != nil {
		t.Fatal(err)
	}
	if f.halves != 1 || len(f.ctx) != T*2 || f.ctx[0] != 1 {
		t.Fatalf("guidance 1: %d halves, context %v", f.halves, f.ctx)
	}
}
