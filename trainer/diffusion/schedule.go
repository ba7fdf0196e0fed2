package diffusion

import (
	"fmt"
	"math"
)

// DefaultSteps is the training step count of the schedules.
const DefaultSteps = 1000

// Schedule is a DDPM noise schedule: Betas[t] for t in [0, Steps) and the
// cumulative products AlphaBar[t] = prod_{s<=t} (1 - Betas[s]).
type Schedule struct {
	Kind     string
	Betas    []float64
	AlphaBar []float64
}

// Steps is the number of diffusion steps.
func (s *Schedule) Steps() int { return len(s.Betas) }

// NewSchedule returns the "linear" (1e-4 to 0.02, as in DDPM) or "cosine"
// (Nichol & Dhariwal, s = 0.008, betas clipped at 0.999) schedule.
func NewSchedule(kind string, steps int) (*Schedule, error) {
	if steps < 2 {
		return nil, fmt.Errorf("diffusion: schedule needs at least 2 steps, got %d", steps)
	}
	betas := make([]float64, steps)
	switch kind {
	case "linear":
		// scaled so any step count spans the same noise range as 1000 steps
		scale := 1000 / float64(steps)
		lo, hi := scale*1e-4, scale*0.02
		for i := range betas {
			betas[i] = lo + (hi-lo)*float64(i)/float64(steps-1)
		}
	case "cosine":
		const s = 0.008
		f := func(t float64) float64 {
			c := math.Cos((t/float64(steps) + s) / (1 + s) * math.Pi / 2)
			return c * c
		}
		for i := range betas {
			betas[i] = math.Min(1-f(float64(i+1))/f(float64(i)), 0.999)
		}
	default:
		return nil, fmt.Errorf("diffusion: unknown schedule %q (want linear or cosine)", kind)
	}
	ab := make([]float64, steps)
	acc := 1.0
	for i, b := range betas {
		acc *= 1 - b
		ab[i] = acc
	}
	return &Schedule{Kind: kind, Betas: betas, AlphaBar: ab}, nil
}

// QSample writes x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise into dst
// for a batch of items of itemLen values each, item i at timestep t[i].
// dst may alias x0.
func (s *Schedule) QSample(dst, x0, noise []float32, t []int, itemLen int) error {
	if len(x0) != len(t)*itemLen || len(noise) != len(x0) || len(dst) != len(x0) {
		return fmt.Errorf("diffusion: qsample: %d items of %d values, got x0 %d, noise %d, dst %d", len(t), itemLen, len(x0), len(noise), len(dst))
	}
	for i, ti := range t {
		if ti < 0 || ti >= s.Steps() {
			return fmt.Errorf("diffusion: qsample: timestep %d outside [0, %d)", ti, s.Steps())
		}
		a := float32(math.Sqrt(s.AlphaBar[ti]))
		b := float32(math.Sqrt(1 - s.AlphaBar[ti]))
		off := i * itemLen
		for j := off; j < off+itemLen; j++ {
			dst[j] = a*x0[j] + b*noise[j]
		}
	}
	return nil
}
