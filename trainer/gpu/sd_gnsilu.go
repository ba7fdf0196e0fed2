package gpu

import (
	"fmt"
	"os"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Training passes of the SD executor run a per-frame GroupNorm whose
// output only feeds the SiLU right after it (both norms of every resnet,
// conv_norm_out) as one fused op (cuda's GroupNormSiLU ops): the forward
// writes the SiLU's output straight from x and keeps the group statistics
// (a few KB) for the backward pass, the normalised tensor is never
// written nor kept, and the backward recomputes it from x inside the
// kernel that computes dx, adding into the input's gradient where one has
// arrived already (the resnet input's skip branch). The SiLU layer then
// does nothing in either pass. Forward-only passes keep their own fusion
// (sd_half_fused.go). PIPELINE_SD_GN_SILU=0 runs the two layers apart.
var sdGNSiLU = os.Getenv("PIPELINE_SD_GN_SILU") != "0"

// gnSiLUFused reports whether layer i is a GroupNorm running fused with the
// SiLU at i+1 in this pass.
func (s *SDNet) gnSiLUFused(i int) bool {
	if !sdGNSiLU || s.eval || i < 0 || i+1 >= len(s.p.net.Layers) {
		return false
	}
	if s.gnFuse == nil {
		net := s.p.net
		s.gnFuse = make([]bool, len(net.Layers))
		for j, l := range net.Layers {
			s.gnFuse[j] = l.Kind == model.GroupNorm && !l.Joint && fusable(net, j)
		}
	}
	// a checkpointed step recomputes the pair in one segment: never split
	return s.gnFuse[i] && !s.p.persistent[s.p.net.Layers[i].Out] && (s.ck == nil || s.ck.segOf[i] == s.ck.segOf[i+1])
}

// forwardGNSiLU runs layer i when it is a fused GroupNorm (writing its
// SiLU's output) or that SiLU (nothing to compute); done is false for any
// other layer.
func (s *SDNet) forwardGNSiLU(i int) (done bool, err error) {
	switch {
	case s.gnSiLUFused(i):
		if err := s.gnSiLUForward(i); err != nil {
			return true, err
		}
	case s.gnSiLUFused(i - 1):
		if s.vals[s.p.net.Layers[i].Out] == nil {
			return true, fmt.Errorf("fused group norm output was freed or never computed")
		}
	default:
		return false, nil
	}
	for _, v := range s.freeList(i, true) {
		if s.mayFree(v) {
			s.freeValue(v)
		}
	}
	return true, s.packDone(i)
}

func (s *SDNet) gnSiLUForward(i int) error {
	net := s.p.net
	l := net.Layers[i]
	x := s.vals[l.In[0]]
	if x == nil {
		return fmt.Errorf("input value %d was freed or never computed", l.In[0])
	}
	gs := s.gnShape(l)
	st, err := s.dev.NewGroupNormStats(gs)
	if err != nil {
		return err
	}
	out := net.Layers[i+1].Out
	y, err := s.dev.NewTensor(s.p.shapes[out]...)
	if err != nil {
		st.Free()
		return err
	}
	s.vals[out] = y
	if err := s.dev.GroupNormSiLUForward(y, x, s.param(l, 0), s.param(l, 1), st, gs); err != nil {
		st.Free()
		return err
	}
	if s.noSave || !s.p.backward[i] {
		st.Free()
		return nil
	}
	if old := s.gnSt[i]; old != nil {
		old.Free()
	}
	s.gnSt[i] = st
	return nil
}

// backwardSiLUFused hands the fused SiLU's output gradient dy on to its
// GroupNorm (layer i-1) as the gradient of the norm's output: the norm's
// backward takes it through the SiLU. passed reports that dy was taken.
func (s *SDNet) backwardSiLUFused(i int, dy *cuda.Tensor) (passed bool) {
	h := s.p.net.Layers[i].In[0]
	if !s.p.reqGrad[h] || s.grads[h] != nil {
		return false // nothing flows on (a second gradient cannot reach it: the SiLU is its only reader)
	}
	s.grads[h] = dy
	return true
}

// gnSiLUBackward is the fused GroupNorm+SiLU's backward at layer i: dy is
// the gradient of the SiLU's output.
func (s *SDNet) gnSiLUBackward(i int, dy, x *cuda.Tensor, needX bool) error {
	l := s.p.net.Layers[i]
	st := s.gnSt[i]
	if st == nil {
		return fmt.Errorf("group norm statistics were not kept")
	}
	defer func() { st.Free(); delete(s.gnSt, i) }()
	d, gs := s.dev, s.gnShape(l)
	gamma, beta := s.param(l, 0), s.param(l, 1)
	if dg, db := s.wgrad(l, 0), s.wgrad(l, 1); dg != nil || db != nil {
		if err := d.GroupNormSiLUBackwardParams(dg, db, dy, x, gamma, beta, st, gs); err != nil {
			return err
		}
	}
	if !needX {
		return nil
	}
	return s.gnBackwardDataInto(l.In[0], dy, x, gamma, beta, st, gs, true)
}

// gnBackwardDataInto adds a group norm's data gradient (through its fused
// SiLU with silu) to value v's gradient, in the kernel that computes it;
// a fresh buffer when none has arrived yet.
func (s *SDNet) gnBackwardDataInto(v int, dy, x, gamma, beta *cuda.Tensor, st *cuda.GroupNormStats, gs nn.GroupNormShape, silu bool) error {
	if cur := s.grads[v]; cur != nil {
		return s.dev.GroupNormBackwardDataTo(cur, dy, x, gamma, beta, st, gs, cuda.GNBackwardData{SiLU: silu, Accumulate: true})
	}
	dx, err := s.dev.NewTensor(s.p.shapes[v]...)
	if err != nil {
		return err
	}
	if err := s.dev.GroupNormBackwardDataTo(dx, dy, x, gamma, beta, st, gs, cuda.GNBackwardData{SiLU: silu}); err != nil {
		dx.Free()
		return err
	}
	s.grads[v] = dx
	return nil
}
