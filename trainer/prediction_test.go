package trainer

import (
	"math"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/diffusion"
)

// The sampler's conversion inverts the training target: a network that
// outputs the exact v yields the exact epsilon.
func TestEpsFromVInvertsVelocity(t *testing.T) {
	s, _ := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	const c, hw, frames = 3, 4, 3
	fl := c * hw
	x0 := make([]float32, frames*fl)
	eps := make([]float32, frames*fl)
	for i := range x0 {
		x0[i] = float32(math.Sin(float64(i)))
		eps[i] = float32(math.Cos(float64(3 * i)))
	}
	steps := []int{0, 500, 999}
	xt := make([]float32, len(x0))
	if err := s.QSample(xt, x0, eps, steps, fl); err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(x0))
	velocity(v, x0, eps, steps, fl, s)
	// Model input: x_t, then a conditioning frame and mask (ignored here).
	il := diffusion.InputChannels(c) * hw
	input := make([]float32, frames*il)
	ts := make([]float32, frames)
	for f := range frames {
		copy(input[f*il:], xt[f*fl:(f+1)*fl])
		ts[f] = float32(steps[f])
	}
	got, err := epsFromV(func(_, _ []float32) ([]float32, error) { return v, nil }, s, c, hw)(input, ts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range eps {
		if math.Abs(float64(got[i]-eps[i])) > 1e-5 {
			t.Fatalf("eps[%d] = %v, want %v (frame t=%d)", i, got[i], eps[i], steps[i/fl])
		}
	}
}
