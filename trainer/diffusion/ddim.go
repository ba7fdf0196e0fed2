package diffusion

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// EpsFunc predicts the noise of a model input (B*T, 2C+1, H, W) at the
// per-frame timesteps (B*T), returning (B*T, C, H, W). The returned slice
// is only read before the next call.
type EpsFunc func(input, timesteps []float32) ([]float32, error)

// DDIMOptions configures the sampler. The zero value of Eta is the
// deterministic DDIM sampler.
type DDIMOptions struct {
	Steps int     // number of denoising steps, 1..schedule steps
	Eta   float64 // 0: deterministic; 1: DDPM-like noise
	Seed  uint64  // initial noise (and eta noise)
	// Progress, when set, is called after each step with (done, total).
	Progress func(done, total int)
}

// Timesteps returns the descending timestep sequence of an n-step DDIM
// run over a schedule of `total` steps.
func Timesteps(total, n int) []int {
	ts := make([]int, n)
	for i := 0; i < n; i++ {
		// evenly spaced, from total-1 down to 0
		ts[n-1-i] = int(math.Round(float64(i) * float64(total-1) / float64(max(1, n-1))))
	}
	if n == 1 {
		ts[0] = total - 1
	}
	return ts
}

// SampleDDIM generates l.B clips of l.T frames conditioned on cond
// (B, C, H, W), the first frame of each clip, and returns them as
// (B, T, C, H, W) with frame 0 set to cond and values clamped to [-1, 1].
func SampleDDIM(ctx context.Context, s *Schedule, eps EpsFunc, cond []float32, l Layout, o DDIMOptions) ([]float32, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	if o.Steps < 1 || o.Steps > s.Steps() {
		return nil, fmt.Errorf("diffusion: ddim steps %d outside [1, %d]", o.Steps, s.Steps())
	}
	if len(cond) != l.B*l.FrameLen() {
		return nil, fmt.Errorf("diffusion: ddim: cond has %d values, want %d", len(cond), l.B*l.FrameLen())
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x6464696d))
	x := make([]float32, l.Len())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	in := make([]float32, l.InputLen())
	tf := make([]float32, l.Frames())
	ts := Timesteps(s.Steps(), o.Steps)
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := AssembleInput(in, x, cond, l, FirstFrameKnown); err != nil {
			return nil, err
		}
		for j := range tf {
			tf[j] = float32(t)
		}
		e, err := eps(in, tf)
		if err != nil {
			return nil, fmt.Errorf("diffusion: ddim step %d (t=%d): %w", i, t, err)
		}
		if len(e) != len(x) {
			return nil, fmt.Errorf("diffusion: ddim: model returned %d values, want %d", len(e), len(x))
		}
		ab := s.AlphaBar[t]
		abPrev := 1.0
		if i+1 < len(ts) {
			abPrev = s.AlphaBar[ts[i+1]]
		}
		sigma := o.Eta * math.Sqrt((1-abPrev)/(1-ab)) * math.Sqrt(1-ab/abPrev)
		c0 := math.Sqrt(abPrev)
		ce := math.Sqrt(math.Max(0, 1-abPrev-sigma*sigma))
		sa, sb := math.Sqrt(ab), math.Sqrt(1-ab)
		for j := range x {
			ej := float64(e[j])
			x0 := (float64(x[j]) - sb*ej) / sa
			x0 = math.Max(-1, math.Min(1, x0))
			// re-derive eps from the clipped x0 so the step stays consistent
			ej = (float64(x[j]) - sa*x0) / sb
			v := c0*x0 + ce*ej
			if sigma > 0 {
				v += sigma * rng.NormFloat64()
			}
			x[j] = float32(v)
		}
		if o.Progress != nil {
			o.Progress(i+1, len(ts))
		}
	}
	fl := l.FrameLen()
	for b := 0; b < l.B; b++ {
		copy(x[b*l.T*fl:], cond[b*fl:(b+1)*fl])
	}
	for j, v := range x {
		x[j] = float32(math.Max(-1, math.Min(1, float64(v))))
	}
	return x, nil
}
