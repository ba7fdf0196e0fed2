package optim

import "fmt"

// EMA is an exponential moving average of params' values, updated after
// every optimizer step:
//
//	avg = d*avg + (1-d)*param,  d = min(Decay, (1+n)/(10+n))
//
// with n the steps taken. The warm-up term (the usual one of diffusion
// trainers) lets a short run average over roughly its last tenth instead
// of being dominated by the initial weights; Decay caps it for long runs.
// The average starts at the params' values.
type EMA struct {
	Decay  float64
	params []*Param
	avg    [][]float32
	work   []span
}

// NewEMA returns an average of params starting at their current values.
// Decay must lie in (0, 1).
func NewEMA(decay float64, params []*Param) (*EMA, error) {
	if !(decay > 0 && decay < 1) {
		return nil, fmt.Errorf("optim: ema decay %g: want 0 < decay < 1", decay)
	}
	e := &EMA{Decay: decay, params: params}
	for i, p := range params {
		e.avg = append(e.avg, append([]float32(nil), p.Data...))
		for lo := 0; lo < len(p.Data); lo += chunk {
			e.work = append(e.work, span{i, lo, min(lo+chunk, len(p.Data))})
		}
	}
	return e, nil
}

// DecayAt is the decay applied by the update after step n (1-based).
func (e *EMA) DecayAt(n int) float64 {
	return min(e.Decay, float64(1+n)/float64(10+n))
}

// Update folds the params' current values into the average; n is the
// optimizer step just taken (1-based).
func (e *EMA) Update(n int) {
	d := float32(e.DecayAt(n))
	runSpans(e.work, func(_ int, s span) {
		a, p := e.avg[s.p][s.lo:s.hi], e.params[s.p].Data[s.lo:s.hi]
		for j := range a {
			a[j] = d*a[j] + (1-d)*p[j]
		}
	})
}

// Swap exchanges the average and the params' values in place (the params'
// slices stay the same, so graphs viewing them see the average). Swapping
// twice restores both.
func (e *EMA) Swap() {
	runSpans(e.work, func(_ int, s span) {
		a, p := e.avg[s.p][s.lo:s.hi], e.params[s.p].Data[s.lo:s.hi]
		for j := range a {
			a[j], p[j] = p[j], a[j]
		}
	})
}

// Average returns the average of param i (in the order given to NewEMA);
// the slice is the EMA's own.
func (e *EMA) Average(i int) []float32 { return e.avg[i] }

// Set replaces the average of every param by the values of get (a
// restored checkpoint); get returns nil for a missing param, an error.
func (e *EMA) Set(get func(p *Param) []float32) error {
	for i, p := range e.params {
		v := get(p)
		if v == nil {
			return fmt.Errorf("optim: ema: no average of %s", p.Name)
		}
		if len(v) != len(p.Data) {
			return fmt.Errorf("optim: ema: average of %s has %d values, the param %d", p.Name, len(v), len(p.Data))
		}
		copy(e.avg[i], v)
	}
	return nil
}
