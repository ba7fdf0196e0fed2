package optim

import "unsafe"

// adamwBlock is the argument block of the vector AdamW kernels
// (adamw_amd64.s): eight float32 pointers whose meaning is the kernel's,
// a count (a multiple of 8) and the step's constants.
type adamwBlock struct {
	p [8]unsafe.Pointer
	n int
	c adamwConsts
}

// adamwConsts are one span's constants of the element update, in the
// kernels' order: the gradient's clipping scale, beta1, 1-beta1, beta2,
// 1-beta2, sqrt(1-beta2^t), eps, the decay factor and the step size.
type adamwConsts struct {
	scale, b1, c1, b2, c2, sqrtC2, eps, d, stepSize float32
}

// consts returns h's constants for a span with decay factor d and
// gradient scale scale.
func (h hyper) consts(d, scale float32) adamwConsts {
	return adamwConsts{scale: scale, b1: h.b1, c1: 1 - h.b1, b2: h.b2, c2: 1 - h.b2, sqrtC2: h.sqrtC2, eps: h.eps, d: d, stepSize: h.stepSize}
}

// ptr returns the address of x's first element, or nil for an empty x.
func ptr(x []float32) unsafe.Pointer {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Pointer(&x[0])
}

// updateFromVec updates the leading multiple of 8 of n elements with the
// vector kernel where the CPU has one: from g (unscaled), w0, m0 and v0
// into w, m and v, and into st too when it is not nil. It returns how many
// elements it did (the caller does the rest).
func updateFromVec(c adamwConsts, n int, g, w0, m0, v0, w, m, v, st []float32) int {
	k := n &^ 7
	if !haveVecAdamW || k == 0 {
		return 0
	}
	var stp unsafe.Pointer
	if st != nil {
		stp = ptr(st)
	}
	b := adamwBlock{p: [8]unsafe.Pointer{ptr(g), ptr(w0), ptr(m0), ptr(v0), ptr(w), ptr(m), ptr(v), stp}, n: k, c: c}
	adamwFromVec(&b)
	return k
}

// speculateVec is updateFromVec for a speculated span: w, m and v updated
// in place, their old values saved to sw, sm and sv.
func speculateVec(c adamwConsts, n int, g, w, m, v, sw, sm, sv, st []float32) int {
	k := n &^ 7
	if !haveVecAdamW || k == 0 {
		return 0
	}
	var stp unsafe.Pointer
	if st != nil {
		stp = ptr(st)
	}
	b := adamwBlock{p: [8]unsafe.Pointer{ptr(g), ptr(w), ptr(m), ptr(v), ptr(sw), ptr(sm), ptr(sv), stp}, n: k, c: c}
	adamwSpecVec(&b)
	return k
}
