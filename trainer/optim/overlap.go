package optim

import (
	"fmt"
	"math"
)

// Overlapped is one AdamW step taken param by param while the gradients
// are still being computed (a GPU's backward pass hands them over bucket
// by bucket): Update applies the unclipped update to the params whose
// gradients are final, after saving their weights and moments; Finish
// takes the global norm and, when the gradients must be clipped, Redo
// computes each param again from its saved values with the clipping scale
// (a non-finite norm restores them and returns ErrNonFinite). The weights
// and moments then equal Step's bit for bit: the norm is summed over the
// same spans in the same order, and the update is the same arithmetic.
type Overlapped struct {
	o     *AdamW
	st    Stats // the step being taken (Step, LR)
	h     hyper
	parts []float64 // sum of squares per work span
	done  []bool    // per param: updated (after a clipped Finish: redone)
	scale float32   // the clipping scale, after a clipped Finish
}

// overlapBuffers are the saved weights and moments, kept across steps.
type overlapBuffers struct {
	w, m, v [][]float32
	first   []int // per param: its first work span
}

// BeginOverlapped starts a step whose params are updated by Update and
// which Finish completes. The optimizer must not be used otherwise until
// Finish returns.
func (o *AdamW) BeginOverlapped() *Overlapped {
	if o.saved == nil {
		b := &overlapBuffers{}
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
	step := o.step + 1
	st := Stats{Step: step, LR: o.cfg.LR * o.cfg.Schedule.Factor(step)}
	return &Overlapped{o: o, st: st, h: o.hyper(st), parts: make([]float64, len(o.work)), done: make([]bool, len(o.params))}
}

// spansOf lists the work spans of params idx: their indices and spans.
func (p *Overlapped) spansOf(idx []int) ([]int, []span) {
	var ks []int
	var work []span
	for _, i := range idx {
		for k := p.o.saved.first[i]; k >= 0 && k < len(p.o.work) && p.o.work[k].p == i; k++ {
			ks = append(ks, k)
			work = append(work, p.o.work[k])
		}
	}
	return ks, work
}

// Update saves and updates params idx (indices in Params order) from
// grads (grads[i] is param i's gradient; only those of idx are read),
// on all cores. The gradients must stay unchanged until Finish.
func (p *Overlapped) Update(idx []int, grads [][]float32) error {
	o, b := p.o, p.o.saved
	for _, i := range idx {
		if i < 0 || i >= len(o.params) || p.done[i] {
			return fmt.Errorf("optim: overlapped update of param %d twice or out of range", i)
		}
		if len(grads[i]) != len(o.params[i].Data) {
			return fmt.Errorf("optim: gradient of %s has %d values, param has %d", o.params[i].Name, len(grads[i]), len(o.params[i].Data))
		}
		p.done[i] = true
	}
	ks, work := p.spansOf(idx)
	runSpans(work, func(j int, s span) {
		g := grads[s.p][s.lo:s.hi]
		var sum float64
		for _, x := range g {
			sum += float64(x) * float64(x)
		}
		p.parts[ks[j]] = sum
		copy(b.w[s.p][s.lo:s.hi], o.params[s.p].Data[s.lo:s.hi])
		copy(b.m[s.p][s.lo:s.hi], o.m[s.p][s.lo:s.hi])
		copy(b.v[s.p][s.lo:s.hi], o.v[s.p][s.lo:s.hi])
		o.updateSpan(p.h, s, grads[s.p], 1)
	})
	return nil
}

// Finish completes the step: every param must have been updated. When
// the gradients must be clipped it returns redo: Redo must then be called
// for every param (in any grouping) before the weights are read. A
// non-finite norm restores every param and returns ErrNonFinite (redo
// false, restored true: the weights changed back after the Updates).
func (p *Overlapped) Finish() (st Stats, redo, restored bool, err error) {
	o := p.o
	for i, d := range p.done {
		if !d {
			return Stats{}, false, false, fmt.Errorf("optim: overlapped step finished without the gradient of %s", o.params[i].Name)
		}
	}
	var total float64
	for _, x := range p.parts {
		total += x
	}
	norm := math.Sqrt(total)
	st = p.st
	st.GradNorm = norm
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		o.parallel(func(_ int, s span) { p.restore(s) })
		return Stats{Step: st.Step, GradNorm: norm}, false, true, fmt.Errorf("%w (global norm %v) at step %d", ErrNonFinite, norm, st.Step)
	}
	o.step = st.Step
	if o.cfg.ClipNorm > 0 && norm > o.cfg.ClipNorm {
		p.scale = float32(o.cfg.ClipNorm / (norm + 1e-6))
		st.Clipped = true
		clear(p.done)
		return st, true, false, nil
	}
	return st, false, false, nil
}

// Redo applies a clipped step's update to params idx from their saved
// weights and moments and grads, on all cores (after Finish returned
// redo).
func (p *Overlapped) Redo(idx []int, grads [][]float32) error {
	if p.scale == 0 {
		return fmt.Errorf("optim: Redo without a clipped Finish")
	}
	for _, i := range idx {
		if i < 0 || i >= len(p.done) || p.done[i] {
			return fmt.Errorf("optim: redo of param %d twice or out of range", i)
		}
		p.done[i] = true
	}
	o, b := p.o, p.o.saved
	_, work := p.spansOf(idx)
	runSpans(work, func(_ int, s span) {
		o.updateSpanFrom(p.h, s, grads[s.p], p.scale, b.w[s.p][s.lo:s.hi], b.m[s.p][s.lo:s.hi], b.v[s.p][s.lo:s.hi])
	})
	return nil
}

// Abort gives up the step: the params updated so far get their saved
// weights and moments back.
func (p *Overlapped) Abort() {
	var idx []int
	for i, d := range p.done {
		if d || p.scale != 0 { // after a clipped Finish every param changed
			idx = append(idx, i)
		}
	}
	if p.scale != 0 {
		p.o.step = p.st.Step - 1
	}
	_, work := p.spansOf(idx)
	runSpans(work, func(_ int, s span) { p.restore(s) })
	clear(p.done)
}

// restore copies span s's saved weights and moments back.
func (p *Overlapped) restore(s span) {
	o, b := p.o, p.o.saved
	copy(o.params[s.p].Data[s.lo:s.hi], b.w[s.p][s.lo:s.hi])
	copy(o.m[s.p][s.lo:s.hi], b.m[s.p][s.lo:s.hi])
	copy(o.v[s.p][s.lo:s.hi], b.v[s.p][s.lo:s.hi])
}
