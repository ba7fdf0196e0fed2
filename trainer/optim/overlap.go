package optim

import (
	"fmt"
	"math"
)

// Overlapped is one AdamW step taken param by param while the gradients
// are still being computed (a GPU's backward pass hands them over bucket
// by bucket). The clipping scale needs the global norm of every gradient,
// known only at the end, so each bucket is either
//   - speculated: Update saves its weights and moments and applies the
//     unclipped update at once (the whole step is hidden behind the
//     backward pass when it turns out unclipped; redone from the saved
//     values when clipped), or
//   - deferred: Update only sums its gradient's squares; its update runs
//     once, in place, after the norm is known.
//
// Update speculates unless the step is known or likely to be clipped: the
// squares summed so far already exceed the clipping norm's (certain), or
// the optimizer's previous step was clipped (likely; clipping runs in
// streaks). Finish takes the global norm; Complete then finishes every
// param (a redo, a deferred update, or nothing for an unclipped
// speculation), writing the new weights to a staging copy as well. The
// weights and moments equal Step's bit for bit whatever the choice: the
// norm is summed over the same spans in the same order, and every update
// is the same arithmetic from the same values.
type Overlapped struct {
	o        *AdamW
	st       Stats // the step being taken (Step, LR)
	h        hyper
	b        *overlapBuffers
	sum      float64 // squares summed so far (in Update order)
	finished bool
	scale    float32 // the clipping scale after Finish (1: unclipped)
	workers  int     // goroutines per call (0: one per core)
}

// SetWorkers makes the step's later calls run on n goroutines (0: one per
// core; fewer leave a core to other work, such as a GPU's kernel launches
// while the update runs behind them). The results do not depend on it.
func (p *Overlapped) SetWorkers(n int) { p.workers = n }

// overlapBuffers are the saved weights and moments and the per-step
// bookkeeping, kept across steps.
type overlapBuffers struct {
	w, m, v [][]float32
	first   []int     // per param: its first work span
	parts   []float64 // sum of squares per work span
	state   []byte    // per param: pending, speculated, deferred, completed
	spec    []bool    // per param: speculated this step (survives completion)
}

const (
	pending = iota
	speculated
	deferred
	completed
)

// BeginOverlapped starts a step whose params are handed over by Update
// and which Finish and Complete finish. The optimizer must not be used
// otherwise until every param is completed (or Abort).
func (o *AdamW) BeginOverlapped() *Overlapped {
	if o.saved == nil {
		b := &overlapBuffers{parts: make([]float64, len(o.work)), state: make([]byte, len(o.params)), spec: make([]bool, len(o.params))}
		for _, p := range o.params {
			b.w = append(b.w, make([]float32, len(p.Data)))
			b.m = append(b.m, make([]float32, len(p.Data)))
			b.v = append(b.v, make([]float32, len(p.Data)))
			b.first = append(b.first, -1)
		}
		for k, s := range o.work {
			if b.first[s.p] < 0 {
				b.first[s.p] = k
			}
		}
		o.saved = b
	}
	b := o.saved
	clear(b.state)
	clear(b.spec)
	step := o.step + 1
	st := Stats{Step: step, LR: o.cfg.LR * o.cfg.Schedule.Factor(step)}
	return &Overlapped{o: o, st: st, h: o.hyper(st), b: b}
}

// spansOf runs fn over the work spans of params idx on all cores (k: the
// span's index in the optimizer's work).
func (p *Overlapped) spansOf(idx []int, fn func(k int, s span)) {
	o := p.o
	var lo, hi int
	if len(idx) == 1 { // one param's spans are consecutive: no list
		lo = p.b.first[idx[0]]
		for hi = lo; hi < len(o.work) && o.work[hi].p == idx[0]; hi++ {
		}
		runSpansOn(p.workers, o.work[lo:hi], func(j int, s span) { fn(lo+j, s) })
		return
	}
	var ks []int
	for _, i := range idx {
		for k := p.b.first[i]; k >= 0 && k < len(o.work) && o.work[k].p == i; k++ {
			ks = append(ks, k)
		}
	}
	work := make([]span, len(ks))
	for j, k := range ks {
		work[j] = o.work[k]
	}
	runSpansOn(p.workers, work, func(j int, s span) { fn(ks[j], s) })
}

// check validates params idx, not yet handed over, against grads (and
// stage, when not nil).
func (p *Overlapped) check(idx []int, grads, stage [][]float32) error {
	o := p.o
	for _, i := range idx {
		if i < 0 || i >= len(o.params) || p.b.state[i] != pending {
			return fmt.Errorf("optim: overlapped update of param %d twice or out of range", i)
		}
		if len(grads[i]) != len(o.params[i].Data) {
			return fmt.Errorf("optim: gradient of %s has %d values, param has %d", o.params[i].Name, len(grads[i]), len(o.params[i].Data))
		}
		if stage != nil && stage[i] != nil && len(stage[i]) != len(o.params[i].Data) {
			return fmt.Errorf("optim: staging of %s has %d values, param has %d", o.params[i].Name, len(stage[i]), len(o.params[i].Data))
		}
	}
	return nil
}

// Update hands over params idx (indices in Params order) whose gradients
// are final (grads[i] is param i's gradient; only those of idx are read),
// on all cores. It reports whether it updated them (speculated: their
// weights changed, and were written to stage[i] as well where stage and
// stage[i] are not nil) or deferred them to Complete. The gradients must
// stay unchanged until Complete.
func (p *Overlapped) Update(idx []int, grads, stage [][]float32) (bool, error) {
	if p.finished {
		return false, fmt.Errorf("optim: overlapped update after Finish")
	}
	if err := p.check(idx, grads, stage); err != nil {
		return false, err
	}
	o, b := p.o, p.b
	clip := o.cfg.ClipNorm
	spec := !(clip > 0 && (o.clippedLast || p.sum > clip*clip))
	for _, i := range idx {
		b.state[i] = deferred
		if spec {
			b.state[i], b.spec[i] = speculated, true
		}
	}
	p.spansOf(idx, func(k int, s span) {
		g := grads[s.p][s.lo:s.hi]
		var sum float64
		for _, x := range g {
			sum += float64(x) * float64(x)
		}
		b.parts[k] = sum
		if spec {
			o.speculateSpan(p.h, s, grads[s.p], stageOf(stage, s.p), b.w[s.p], b.m[s.p], b.v[s.p])
		}
	})
	for _, i := range idx {
		for k := b.first[i]; k >= 0 && k < len(o.work) && o.work[k].p == i; k++ {
			p.sum += b.parts[k]
		}
	}
	return spec, nil
}

// stageOf returns stage[i], or nil.
func stageOf(stage [][]float32, i int) []float32 {
	if stage == nil {
		return nil
	}
	return stage[i]
}

// Finish takes the global norm once every param is handed over. Complete
// must then be called for every param (in any grouping) before the
// weights are read. A non-finite norm restores the speculated params and
// returns ErrNonFinite (restored reports whether any weight changed back
// after the Updates); the step is then not taken.
func (p *Overlapped) Finish() (st Stats, restored bool, err error) {
	o, b := p.o, p.b
	for i, s := range b.state {
		if s == pending {
			return Stats{}, false, fmt.Errorf("optim: overlapped step finished without the gradient of %s", o.params[i].Name)
		}
	}
	var total float64
	for _, x := range b.parts {
		total += x
	}
	norm := math.Sqrt(total)
	st = p.st
	st.GradNorm = norm
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		p.restoreSpeculated()
		return Stats{Step: st.Step, GradNorm: norm}, slicesAny(b.spec), fmt.Errorf("%w (global norm %v) at step %d", ErrNonFinite, norm, st.Step)
	}
	o.step = st.Step
	p.scale = 1
	if o.cfg.ClipNorm > 0 && norm > o.cfg.ClipNorm {
		p.scale = float32(o.cfg.ClipNorm / (norm + 1e-6))
		st.Clipped = true
	}
	o.clippedLast = st.Clipped
	p.finished = true
	return st, false, nil
}

func slicesAny(bs []bool) bool {
	for _, x := range bs {
		if x {
			return true
		}
	}
	return false
}

// Complete finishes params idx after Finish, on all cores: a speculated
// param of a clipped step is computed again from its saved values, a
// deferred one updated in place, each with the clipping scale (a
// speculated param of an unclipped step is already done). The new
// weights are also written to stage[i] where stage and stage[i] are not
// nil. It reports whether any weight of idx changed.
func (p *Overlapped) Complete(idx []int, grads, stage [][]float32) (bool, error) {
	if !p.finished {
		return false, fmt.Errorf("optim: Complete before a successful Finish")
	}
	o, b := p.o, p.b
	for _, i := range idx {
		if i < 0 || i >= len(o.params) || b.state[i] == completed || b.state[i] == pending {
			return false, fmt.Errorf("optim: completion of param %d twice or out of range", i)
		}
	}
	changed := false
	for _, i := range idx {
		if b.state[i] == deferred || p.scale != 1 {
			changed = true
		}
		if len(grads[i]) != len(o.params[i].Data) {
			return false, fmt.Errorf("optim: gradient of %s has %d values, param has %d", o.params[i].Name, len(grads[i]), len(o.params[i].Data))
		}
		if st := stageOf(stage, i); st != nil && len(st) != len(o.params[i].Data) {
			return false, fmt.Errorf("optim: staging of %s has %d values, param has %d", o.params[i].Name, len(st), len(o.params[i].Data))
		}
	}
	if changed {
		p.spansOf(idx, func(_ int, s span) {
			if !b.spec[s.p] {
				o.updateSpanFrom(p.h, s, grads[s.p], p.scale, nil, nil, nil, stageOf(stage, s.p))
			} else if p.scale != 1 {
				o.updateSpanFrom(p.h, s, grads[s.p], p.scale, b.w[s.p], b.m[s.p], b.v[s.p], stageOf(stage, s.p))
			}
		})
	}
	for _, i := range idx {
		b.state[i] = completed
	}
	return changed, nil
}

// Abort gives up the step. Before Finish, the speculated params get their
// saved weights and moments back and the step is not taken. After a
// successful Finish the step is carried through instead (every param not
// yet completed is completed, without a staging copy): the norm is known
// and a deferred param's old values are not kept.
func (p *Overlapped) Abort(grads [][]float32) {
	b := p.b
	if !p.finished {
		p.restoreSpeculated()
		clear(b.state)
		return
	}
	var idx []int
	for i, s := range b.state {
		if s != completed {
			idx = append(idx, i)
		}
	}
	if len(idx) > 0 {
		p.Complete(idx, grads, nil)
	}
}

// restoreSpeculated copies every speculated param's saved weights and
// moments back.
func (p *Overlapped) restoreSpeculated() {
	o, b := p.o, p.b
	var idx []int
	for i, s := range b.spec {
		if s {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	p.spansOf(idx, func(_ int, s span) {
		copy(o.params[s.p].Data[s.lo:s.hi], b.w[s.p][s.lo:s.hi])
		copy(o.m[s.p][s.lo:s.hi], b.m[s.p][s.lo:s.hi])
		copy(o.v[s.p][s.lo:s.hi], b.v[s.p][s.lo:s.hi])
	})
}
