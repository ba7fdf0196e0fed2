package optim

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Config holds AdamW's hyper-parameters. See DefaultConfig for usual values.
type Config struct {
	// LR is the peak learning rate.
	LR float64
	// Beta1, Beta2 and Eps are Adam's moment decays and denominator guard.
	Beta1, Beta2, Eps float64
	// WeightDecay is the decoupled decay: each step multiplies a weight by
	// 1 - lr*WeightDecay (params marked NoDecay are exempt).
	WeightDecay float64
	// ClipNorm, when positive, scales the gradients down so their global L2
	// norm is at most ClipNorm.
	ClipNorm float64
	Schedule Schedule
}

// DefaultConfig returns PyTorch's AdamW defaults with clipping at norm 1.
func DefaultConfig() Config {
	return Config{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, ClipNorm: 1}
}

// Param is one trainable tensor. Data is updated in place by Step.
type Param struct {
	Name    string
	Shape   []int
	Data    []float32
	NoDecay bool
}

// Stats describes one optimizer step.
type Stats struct {
	// Step is the step just taken (1-based).
	Step int
	// LR is the learning rate used.
	LR float64
	// GradNorm is the global L2 norm of the gradients before clipping.
	GradNorm float64
	// Clipped reports whether the gradients were scaled down.
	Clipped bool
}

// ErrNonFinite is returned by Step when a gradient holds NaN or Inf; the
// weights and moments are then left unchanged.
var ErrNonFinite = errors.New("optim: non-finite gradient")

// chunk is the unit of parallel work, fixed so that sums (the norm) are
// grouped identically whatever the number of cores.
const chunk = 1 << 15

// AdamW is the optimizer. Its moments are host float32 slices, one pair per
// param.
type AdamW struct {
	cfg    Config
	params []*Param
	m, v   [][]float32
	step   int
	work   []span
	saved  *overlapBuffers // BeginOverlapped's, allocated on first use
	// clippedLast: the last step was clipped (Overlapped's guess for the
	// next one; not part of the state)
	clippedLast bool
}

type span struct{ p, lo, hi int }

// New returns an optimizer over params, with zero moments at step 0.
func New(cfg Config, params []*Param) (*AdamW, error) {
	if cfg.LR < 0 || cfg.Beta1 < 0 || cfg.Beta1 >= 1 || cfg.Beta2 < 0 || cfg.Beta2 >= 1 || cfg.Eps <= 0 {
		return nil, fmt.Errorf("optim: invalid AdamW config %+v", cfg)
	}
	o := &AdamW{cfg: cfg, params: params}
	seen := map[string]bool{}
	for i, p := range params {
		if seen[p.Name] {
			return nil, fmt.Errorf("optim: param %q given twice", p.Name)
		}
		seen[p.Name] = true
		o.m = append(o.m, make([]float32, len(p.Data)))
		o.v = append(o.v, make([]float32, len(p.Data)))
		for lo := 0; lo < len(p.Data); lo += chunk {
			o.work = append(o.work, span{i, lo, min(lo+chunk, len(p.Data))})
		}
	}
	return o, nil
}

// Config returns the optimizer's configuration.
func (o *AdamW) Config() Config { return o.cfg }

// StepCount returns the number of steps taken.
func (o *AdamW) StepCount() int { return o.step }

// Params returns the params in the order Step expects their gradients.
func (o *AdamW) Params() []*Param { return o.params }

// LR returns the learning rate of the next step.
func (o *AdamW) LR() float64 { return o.cfg.LR * o.cfg.Schedule.Factor(o.step+1) }

// parallel runs fn over every span on all cores.
func (o *AdamW) parallel(fn func(i int, s span)) { runSpans(o.work, fn) }

// runSpans runs fn over every span of work on all cores.
func runSpans(work []span, fn func(i int, s span)) { runSpansOn(0, work, fn) }

// runSpansOn runs fn over every span of work on n goroutines (0: one per
// core).
func runSpansOn(n int, work []span, fn func(i int, s span)) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	workers := min(n, len(work))
	if workers <= 1 {
		for i, s := range work {
			fn(i, s)
		}
		return
	}
	var next sync.Mutex
	idx := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				next.Lock()
				i := idx
				idx++
				next.Unlock()
				if i >= len(work) {
					return
				}
				fn(i, work[i])
			}
		})
	}
	wg.Wait()
}

// GlobalNorm returns the L2 norm over all grads (which must match the params'
// sizes), summed in float64 in a fixed order.
func (o *AdamW) GlobalNorm(grads [][]float32) float64 {
	parts := make([]float64, len(o.work))
	o.parallel(func(i int, s span) {
		var sum float64
		for _, g := range grads[s.p][s.lo:s.hi] {
			sum += float64(g) * float64(g)
		}
		parts[i] = sum
	})
	var total float64
	for _, p := range parts {
		total += p
	}
	return math.Sqrt(total)
}

// Step applies one AdamW update from grads (one slice per param, in Params
// order). A non-finite gradient returns ErrNonFinite and changes nothing.
func (o *AdamW) Step(grads [][]float32) (Stats, error) {
	if len(grads) != len(o.params) {
		return Stats{}, fmt.Errorf("optim: %d gradients for %d params", len(grads), len(o.params))
	}
	for i, p := range o.params {
		if len(grads[i]) != len(p.Data) {
			return Stats{}, fmt.Errorf("optim: gradient of %s has %d values, param has %d", p.Name, len(grads[i]), len(p.Data))
		}
	}
	norm := o.GlobalNorm(grads)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return Stats{Step: o.step + 1, GradNorm: norm}, fmt.Errorf("%w (global norm %v) at step %d", ErrNonFinite, norm, o.step+1)
	}
	o.step++
	st := Stats{Step: o.step, LR: o.cfg.LR * o.cfg.Schedule.Factor(o.step), GradNorm: norm}
	scale := float32(1)
	if o.cfg.ClipNorm > 0 && norm > o.cfg.ClipNorm {
		scale = float32(o.cfg.ClipNorm / (norm + 1e-6))
		st.Clipped = true
	}
	o.clippedLast = st.Clipped
	h := o.hyper(st)
	o.parallel(func(_ int, s span) { o.updateSpan(h, s, grads[s.p], scale) })
	return st, nil
}

// hyper is one step's constants of the update.
type hyper struct {
	b1, b2, stepSize, sqrtC2, eps, decay float32
}

func (o *AdamW) hyper(st Stats) hyper {
	c1 := 1 - math.Pow(o.cfg.Beta1, float64(st.Step))
	c2 := 1 - math.Pow(o.cfg.Beta2, float64(st.Step))
	return hyper{b1: float32(o.cfg.Beta1), b2: float32(o.cfg.Beta2), stepSize: float32(st.LR / c1),
		sqrtC2: float32(math.Sqrt(c2)), eps: float32(o.cfg.Eps), decay: float32(1 - st.LR*o.cfg.WeightDecay)}
}

// updateSpan applies the update to span s of its param from grad (the
// param's whole gradient) scaled by scale, in place.
func (o *AdamW) updateSpan(h hyper, s span, grad []float32, scale float32) {
	o.updateSpanFrom(h, s, grad, scale, nil, nil, nil, nil)
}

// updateSpanFrom is updateSpan reading the weights and moments from w0, m0
// and v0 (the param's saved values; nil: its own, in place) and writing
// the new weights to stage as well (the param's staging copy; nil: none).
func (o *AdamW) updateSpanFrom(h hyper, s span, grad []float32, scale float32, w0, m0, v0, stage []float32) {
	p := o.params[s.p]
	w, g := p.Data[s.lo:s.hi], grad[s.lo:s.hi]
	m, v := o.m[s.p][s.lo:s.hi], o.v[s.p][s.lo:s.hi]
	if w0 == nil {
		w0, m0, v0 = w, m, v
	} else {
		w0, m0, v0 = w0[s.lo:s.hi], m0[s.lo:s.hi], v0[s.lo:s.hi]
	}
	d := h.decay
	if p.NoDecay {
		d = 1
	}
	n := len(w)
	g, m, v, w0, m0, v0 = g[:n], m[:n], v[:n], w0[:n], m0[:n], v0[:n]
	var st []float32
	if stage != nil {
		st = stage[s.lo:s.hi][:n]
	}
	k := updateFromVec(h.consts(d, scale), n, g, w0, m0, v0, w, m, v, st)
	if st == nil {
		for j := k; j < n; j++ {
			w[j], m[j], v[j] = h.adamw(d, g[j]*scale, w0[j], m0[j], v0[j])
		}
		return
	}
	for j := k; j < n; j++ {
		wj, mj, vj := h.adamw(d, g[j]*scale, w0[j], m0[j], v0[j])
		w[j], m[j], v[j], st[j] = wj, mj, vj, wj
	}
}

// speculateSpan applies the unclipped update to span s in place, in one
// pass saving the old weights and moments to sw, sm and sv (the param's
// saved copies) and writing the new weights to stage as well (nil: none).
func (o *AdamW) speculateSpan(h hyper, s span, grad, stage, sw, sm, sv []float32) {
	p := o.params[s.p]
	w, g := p.Data[s.lo:s.hi], grad[s.lo:s.hi]
	m, v := o.m[s.p][s.lo:s.hi], o.v[s.p][s.lo:s.hi]
	d := h.decay
	if p.NoDecay {
		d = 1
	}
	n := len(w)
	g, m, v = g[:n], m[:n], v[:n]
	sw, sm, sv = sw[s.lo:s.hi][:n], sm[s.lo:s.hi][:n], sv[s.lo:s.hi][:n]
	var st []float32
	if stage != nil {
		st = stage[s.lo:s.hi][:n]
	}
	for j := speculateVec(h.consts(d, 1), n, g, w, m, v, sw, sm, sv, st); j < n; j++ {
		w0, m0, v0 := w[j], m[j], v[j]
		sw[j], sm[j], sv[j] = w0, m0, v0
		wj, mj, vj := h.adamw(d, g[j], w0, m0, v0)
		w[j], m[j], v[j] = wj, mj, vj
		if st != nil {
			st[j] = wj
		}
	}
}

// adamw is one element's update from gradient g (clipped already), weight
// w0 and moments m0, v0 with weight decay factor d: the new weight and
// moments. Every path (Step, Overlapped's) computes with it or with the
// vector kernel (adamw_amd64.s, the same operations in the same order),
// so they agree bit for bit. The conversions keep each product rounded
// (the compiler may not fuse a multiply-add across one), as the kernel's.
func (h hyper) adamw(d, g, w0, m0, v0 float32) (w, m, v float32) {
	m = float32(h.b1*m0) + float32((1-h.b1)*g)
	v = float32(h.b2*v0) + float32((1-h.b2)*g*g)
	denom := float32(math.Sqrt(float64(v)))/h.sqrtC2 + h.eps
	return float32(w0*d) - float32(h.stepSize*m)/denom, m, v
}

// SetSchedule replaces the learning-rate schedule (for a total step count
// known only once the data is open).
func (o *AdamW) SetSchedule(s Schedule) { o.cfg.Schedule = s }
