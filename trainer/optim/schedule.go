package optim

import "math"

// Schedule shapes the learning rate over steps. The zero value is a constant
// rate with no warm-up.
type Schedule struct {
	// Warmup is the number of steps of linear warm-up: step s (1-based) of
	// the warm-up uses s/Warmup of the peak rate.
	Warmup int
	// Cosine decays the rate after warm-up along a half cosine, reaching
	// MinFactor times the peak at step Total. Otherwise the rate stays at
	// the peak.
	Cosine bool
	// Total is the last step, used by Cosine.
	Total int
	// MinFactor is the fraction of the peak rate at the end of the cosine.
	MinFactor float64
}

// Factor returns the multiplier of the peak rate at step (1-based).
func (s Schedule) Factor(step int) float64 {
	if step < 1 {
		step = 1
	}
	if s.Warmup > 0 && step <= s.Warmup {
		return float64(step) / float64(s.Warmup)
	}
	if !s.Cosine || s.Total <= s.Warmup {
		return 1
	}
	p := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	if p > 1 {
		p = 1
	}
	return s.MinFactor + (1-s.MinFactor)*0.5*(1+math.Cos(math.Pi*p))
}
