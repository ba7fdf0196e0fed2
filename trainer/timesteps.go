package trainer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/timelapse-ml/pipeline/trainer/diffusion"
)

// Timestep samplings of Train (TrainOptions.TimestepSampling).
const (
	// TimestepsUniform draws every timestep with the same probability:
	// the plain v-prediction loss, the one validation measures.
	TimestepsUniform = "uniform"
	// TimestepsMinSNR draws timestep t with probability proportional to
	// min(SNR(t), gamma) / (SNR(t) + 1), the Min-SNR-gamma weight of the
	// v-prediction loss (Hang et al., 2023), so the expected gradient is
	// that of the Min-SNR-weighted loss. Steps near t = 0, where the
	// velocity target is the noise itself and no model predicts it better
	// than another, and steps near the end, where the frames carry almost
	// no signal, are drawn rarely; the mid-noise steps, where temporal
	// context can be learnt, often.
	TimestepsMinSNR = "min_snr"
	// TimestepsSNRCap draws t with probability proportional to
	// min(1, (gamma+1)/(SNR(t)+1)): the velocity loss's own weight on the
	// clean-frame error, SNR+1, capped at gamma+1. Only the steps near
	// t = 0 are drawn less often; the high-noise ones as often as uniform.
	TimestepsSNRCap = "snr_cap"
)

// DefaultMinSNRGamma is gamma of TimestepsMinSNR when none is given (the
// paper's 5).
const DefaultMinSNRGamma = 5.0

// timestepSampler draws training timesteps. The nil sampler is uniform
// (rand.IntN, the draw of runs made before samplings existed, so their
// streams are unchanged).
type timestepSampler struct {
	cdf []float64 // cdf[t] = P(T <= t)
}

// newTimestepSampler returns the sampler called name over schedule s (nil
// for uniform). uniform is the fraction of draws made uniformly, the rest
// by the weights of name.
func newTimestepSampler(name string, gamma, uniform float64, s *diffusion.Schedule) (*timestepSampler, error) {
	var weight func(snr float64) float64
	switch name {
	case "", TimestepsUniform:
		return nil, nil
	case TimestepsMinSNR:
		weight = func(snr float64) float64 { return math.Min(snr, gamma) / (snr + 1) }
	case TimestepsSNRCap:
		weight = func(snr float64) float64 { return math.Min(1, (gamma+1)/(snr+1)) }
	default:
		return nil, fmt.Errorf("trainer: timestep sampling %q: want %s, %s or %s", name, TimestepsUniform, TimestepsMinSNR, TimestepsSNRCap)
	}
	if gamma == 0 {
		gamma = DefaultMinSNRGamma
	}
	if !(gamma > 0) || math.IsInf(gamma, 0) {
		return nil, fmt.Errorf("trainer: min_snr_gamma %g: want > 0", gamma)
	}
	if !(uniform >= 0 && uniform < 1) {
		return nil, fmt.Errorf("trainer: timestep_uniform_fraction %g: want 0 <= f < 1", uniform)
	}
	n := s.Steps()
	w := make([]float64, n)
	var wsum float64
	for t := range w {
		ab := s.AlphaBar[t]
		w[t] = weight(ab / (1 - ab))
		wsum += w[t]
	}
	cdf := make([]float64, n)
	var sum float64
	for t := range cdf {
		sum += (1-uniform)*w[t]/wsum + uniform/float64(n)
		cdf[t] = sum
	}
	for t := range cdf {
		cdf[t] /= sum
	}
	cdf[len(cdf)-1] = 1
	return &timestepSampler{cdf: cdf}, nil
}

// draw returns a timestep in [0, steps).
func (ts *timestepSampler) draw(rnd *rand.Rand, steps int) int {
	if ts == nil {
		return rnd.IntN(steps)
	}
	return min(sort.SearchFloat64s(ts.cdf, rnd.Float64()), steps-1)
}
