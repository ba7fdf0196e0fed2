package diffusion

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// SD's own objective. Stable Diffusion 1.x was trained to predict the noise
// (epsilon) on the "scaled_linear" schedule (betas from 0.00085 to 0.012,
// evenly spaced in their square roots, over 1000 steps) and is sampled with
// DDIM at "leading" timesteps shifted by steps_offset 1; fine-tuning it with
// another objective throws away what it knows. SchedulerConfig reads those
// settings from a diffusers scheduler_config.json, SD15Scheduler is what
// SD-1.5's own file says.

// Prediction types of a scheduler config.
const (
	PredictEpsilon = "epsilon"
	PredictV       = "v_prediction"
)

// SchedulerConfig is the part of a diffusers scheduler_config.json
// (DDIMScheduler, PNDMScheduler, ...) that fixes the noise schedule and the
// DDIM timesteps.
type SchedulerConfig struct {
	ClassName         string  `json:"_class_name,omitempty"`
	NumTrainTimesteps int     `json:"num_train_timesteps"`
	BetaStart         float64 `json:"beta_start"`
	BetaEnd           float64 `json:"beta_end"`
	BetaSchedule      string  `json:"beta_schedule"`
	PredictionType    string  `json:"prediction_type"`
	StepsOffset       int     `json:"steps_offset"`
	// SetAlphaToOne makes the last DDIM step land on alpha_bar 1 (else
	// alpha_bar[0], SD's choice).
	SetAlphaToOne bool `json:"set_alpha_to_one"`
	ClipSample    bool `json:"clip_sample"`
	// TimestepSpacing is "leading" (SD, the default), "trailing" or
	// "linspace".
	TimestepSpacing string `json:"timestep_spacing"`
}

// SD15Scheduler is SD-1.5's scheduler_config.json.
func SD15Scheduler() SchedulerConfig {
	return SchedulerConfig{
		ClassName: "DDIMScheduler", NumTrainTimesteps: 1000, BetaStart: 0.00085, BetaEnd: 0.012,
		BetaSchedule: "scaled_linear", PredictionType: PredictEpsilon, StepsOffset: 1,
		TimestepSpacing: "leading",
	}
}

// ParseSchedulerConfig reads a scheduler_config.json; fields it omits take
// SD15Scheduler's values (diffusers' defaults differ only in steps_offset,
// which SD's own file sets to 1).
func ParseSchedulerConfig(b []byte) (SchedulerConfig, error) {
	c := SD15Scheduler()
	c.ClassName = ""
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("diffusion: scheduler config: %w", err)
	}
	return c, c.Validate()
}

// ReadSchedulerConfig reads path; a missing file gives SD15Scheduler and
// found false.
func ReadSchedulerConfig(path string) (c SchedulerConfig, found bool, err error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return SD15Scheduler(), false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("diffusion: %w", err)
	}
	c, err = ParseSchedulerConfig(b)
	if err != nil {
		return c, true, fmt.Errorf("%s: %w", path, err)
	}
	return c, true, nil
}

// Validate rejects settings this package does not implement.
func (c SchedulerConfig) Validate() error {
	if c.NumTrainTimesteps < 2 || c.NumTrainTimesteps > 100000 {
		return fmt.Errorf("diffusion: num_train_timesteps %d", c.NumTrainTimesteps)
	}
	if !(c.BetaStart > 0 && c.BetaEnd > c.BetaStart && c.BetaEnd < 1) {
		return fmt.Errorf("diffusion: beta_start %g and beta_end %g: want 0 < start < end < 1", c.BetaStart, c.BetaEnd)
	}
	switch c.BetaSchedule {
	case "scaled_linear", "linear":
	default:
		return fmt.Errorf("diffusion: beta_schedule %q: want scaled_linear or linear", c.BetaSchedule)
	}
	switch c.PredictionType {
	case PredictEpsilon, PredictV:
	default:
		return fmt.Errorf("diffusion: prediction_type %q: want %s or %s", c.PredictionType, PredictEpsilon, PredictV)
	}
	switch c.TimestepSpacing {
	case "leading", "trailing", "linspace":
	default:
		return fmt.Errorf("diffusion: timestep_spacing %q: want leading, trailing or linspace", c.TimestepSpacing)
	}
	if c.StepsOffset < 0 || c.StepsOffset >= c.NumTrainTimesteps {
		return fmt.Errorf("diffusion: steps_offset %d", c.StepsOffset)
	}
	return nil
}

// Schedule returns the noise schedule: "scaled_linear" squares the evenly
// spaced square roots of the betas, "linear" spaces the betas themselves.
func (c SchedulerConfig) Schedule() (*Schedule, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n := c.NumTrainTimesteps
	betas := make([]float64, n)
	for i := range betas {
		f := float64(i) / float64(n-1)
		if c.BetaSchedule == "scaled_linear" {
			r := math.Sqrt(c.BetaStart) + (math.Sqrt(c.BetaEnd)-math.Sqrt(c.BetaStart))*f
			betas[i] = r * r
		} else {
			betas[i] = c.BetaStart + (c.BetaEnd-c.BetaStart)*f
		}
	}
	ab := make([]float64, n)
	acc := 1.0
	for i, b := range betas {
		acc *= 1 - b
		ab[i] = acc
	}
	return &Schedule{Kind: c.BetaSchedule, Betas: betas, AlphaBar: ab}, nil
}

// DDIMTimesteps returns the descending timesteps of an n-step DDIM run as
// diffusers' DDIMScheduler.set_timesteps computes them ("leading": every
// (T/n)-th step from 0, plus steps_offset: 981, 961, ..., 1 for SD at 50).
func (c SchedulerConfig) DDIMTimesteps(n int) ([]int, error) {
	T := c.NumTrainTimesteps
	if n < 1 || n > T {
		return nil, fmt.Errorf("diffusion: ddim steps %d outside [1, %d]", n, T)
	}
	ts := make([]int, n)
	switch c.TimestepSpacing {
	case "linspace":
		for i := range ts {
			ts[n-1-i] = int(math.Round(float64(i) * float64(T-1) / float64(max(1, n-1))))
		}
	case "trailing":
		r := float64(T) / float64(n)
		for i := range ts {
			ts[i] = int(math.Round(float64(T)-float64(i)*r)) - 1
		}
	default: // leading
		r := T / n
		for i := range ts {
			ts[n-1-i] = i*r + c.StepsOffset
		}
	}
	for i := range ts {
		ts[i] = min(max(ts[i], 0), T-1)
	}
	return ts, nil
}

// DDIMPrev is the timestep diffusers' DDIM step goes to from t in an
// n-step run: t - T/n (negative after the last).
func (c SchedulerConfig) DDIMPrev(t, n int) int { return t - c.NumTrainTimesteps/n }

// DDIMStep is one step of diffusers' DDIMScheduler.step from timestep t to
// prev (prev < 0: past the last, alpha_bar 1 with SetAlphaToOne, else
// alpha_bar[0]) for epsilon prediction (eps is the model output; with
// v_prediction it is v and converted): x0 = (x - sqrt(1-ab) eps) /
// sqrt(ab) (clipped to [-1, 1] only with ClipSample), sigma = eta *
// sqrt((1-ab_prev)/(1-ab) (1 - ab/ab_prev)), x_prev = sqrt(ab_prev) x0 +
// sqrt(1-ab_prev-sigma^2) eps + sigma noise. noise (len(x)/len(noise)
// repeats: one draw shared by every frame) is read only when sigma > 0. x
// is updated in place.
func (c SchedulerConfig) DDIMStep(s *Schedule, x, eps []float32, t, prev int, eta float64, noise []float32) error {
	if len(eps) != len(x) {
		return fmt.Errorf("diffusion: ddim step: eps has %d values, x %d", len(eps), len(x))
	}
	if t < 0 || t >= s.Steps() || prev >= t {
		return fmt.Errorf("diffusion: ddim step from %d to %d", t, prev)
	}
	ab := s.AlphaBar[t]
	abPrev := s.AlphaBar[0]
	if c.SetAlphaToOne {
		abPrev = 1
	}
	if prev >= 0 {
		abPrev = s.AlphaBar[prev]
	}
	sigma := eta * math.Sqrt((1-abPrev)/(1-ab)*(1-ab/abPrev))
	if sigma > 0 && (len(noise) == 0 || len(x)%len(noise) != 0) {
		return fmt.Errorf("diffusion: ddim step: %d noise values for %d latents", len(noise), len(x))
	}
	sa, sb := math.Sqrt(ab), math.Sqrt(1-ab)
	c0, ce := math.Sqrt(abPrev), math.Sqrt(math.Max(0, 1-abPrev-sigma*sigma))
	v := c.PredictionType == PredictV
	for j := range x {
		xt, e := float64(x[j]), float64(eps[j])
		var x0 float64
		if v { // the model output is v: convert to x0 and eps
			x0, e = sa*xt-sb*e, sa*e+sb*xt
		} else {
			x0 = (xt - sb*e) / sa
		}
		if c.ClipSample {
			x0 = math.Max(-1, math.Min(1, x0))
		}
		y := c0*x0 + ce*e
		if sigma > 0 {
			y += sigma * float64(noise[j%len(noise)])
		}
		x[j] = float32(y)
	}
	return nil
}
