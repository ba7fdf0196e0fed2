package gpu

import "fmt"

// Gradient checkpointing (SDOptions.Checkpointing): the layers are split
// into segments, one diffusers block each (model.Net.CheckpointSegments:
// a resnet, a transformer, a down- or upsampler). The forward pass keeps
// only the values a segment hands to another one (its boundary values:
// the block outputs, the skip connections, the time embedding) and frees
// every value inside a segment after its last forward read. The backward
// pass then takes the segments last to first: it recomputes the segment's
// forward from its kept inputs (this time keeping what its backward
// reads, as a plain training step does), runs its backward, and frees all
// the segment produced. At most one segment's inner values are alive at a
// time.
//
// In the half precisions the boundary values are kept in 16 bits (of the
// precision's type: bfloat16, or float16, whose range ends at 65504 as
// autocast's float16 block outputs do): the first pass packs each one
// after its last forward read and frees its float32 buffer, and a
// segment's recompute unpacks the inputs it reads (freed again after its
// backward; the 16-bit copy lives until its producer's backward). The
// recompute then starts from the inputs rounded to 16 bits, as autocast's
// checkpointing does (its block outputs are 16-bit tensors); the float32
// mode keeps them exact (SDOptions.CheckpointFloat32 in a half one).
//
// Selective checkpointing: the fused attention's saved results (its
// 16-bit output and row logsumexp, flash.go) of the layers with at least
// SDOptions.CheckpointKeepAttention queries x keys are kept from the
// first pass to their backward, and the recompute takes its output from
// them instead of running the attention again (sd_ckpt_attn.go).

// ckptPlan is the schedule of a checkpointed training step.
type ckptPlan struct {
	segs    [][2]int // layer ranges [first, end)
	segOf   []int    // per layer: its segment
	prodSeg []int    // per value: the segment producing it (-1: an input)
	// boundary: read by a layer of another segment than its producer's.
	boundary []bool
	// freeFwd[l]: values to free after layer l in the first forward pass
	// (inner values after their last forward read; never-read ones at once).
	freeFwd [][]int
	// backward[s]: segment s has a layer with a backward pass.
	backward []bool
	// packFwd[l]: boundary values to pack into 16 bits after layer l in the
	// first pass (half precisions; nil lists otherwise); segIn[s]: the
	// boundary values segment s's layers read from earlier segments.
	packFwd [][]int
	segIn   [][]int
	// keepAttn[l]: the first pass keeps layer l's fused attention results
	// (those with at least keepMin queries x keys; 0: none).
	keepAttn []bool
	keepMin  int
	packed   bool // boundaries packed into 16 bits
}

func newCkptPlan(p *sdPlan, pack bool, keepMin int) *ckptPlan {
	net := p.net
	nl, nv := len(net.Layers), len(net.Values)
	c := &ckptPlan{segs: net.CheckpointSegments(), segOf: make([]int, nl), prodSeg: make([]int, nv),
		boundary: make([]bool, nv), freeFwd: make([][]int, nl), packFwd: make([][]int, nl), keepAttn: make([]bool, nl),
		keepMin: max(0, keepMin), packed: pack}
	keepAttn := keepAttention(net, p.shapes, keepMin)
	c.backward = make([]bool, len(c.segs))
	for si, sg := range c.segs {
		for i := sg[0]; i < sg[1]; i++ {
			c.segOf[i] = si
			c.backward[si] = c.backward[si] || p.backward[i]
		}
	}
	for v := range c.prodSeg {
		c.prodSeg[v] = -1
	}
	lastRead := make([]int, nv)
	for v := range lastRead {
		lastRead[v] = -1
	}
	for i, l := range net.Layers {
		c.prodSeg[l.Out] = c.segOf[i]
		for _, v := range l.In {
			lastRead[v] = i
			if c.prodSeg[v] != c.segOf[i] {
				c.boundary[v] = true
			}
		}
	}
	c.segIn = make([][]int, len(c.segs))
	for si, sg := range c.segs {
		seen := map[int]bool{}
		for i := sg[0]; i < sg[1]; i++ {
			for _, v := range net.Layers[i].In {
				if c.prodSeg[v] >= 0 && c.prodSeg[v] != si && !p.persistent[v] && !seen[v] {
					seen[v] = true
					c.segIn[si] = append(c.segIn[si], v)
				}
			}
		}
	}
	for i, l := range net.Layers {
		c.keepAttn[i] = p.backward[i] && keepAttn(i)
		v := l.Out
		if p.persistent[v] {
			continue
		}
		at := lastRead[v]
		if at < 0 {
			at = i
		}
		switch {
		case !c.boundary[v]:
			c.freeFwd[at] = append(c.freeFwd[at], v)
		case pack:
			c.packFwd[at] = append(c.packFwd[at], v)
		}
	}
	return c
}

// packDone packs the boundary values layer i's first-pass forward read
// last (half precisions): a 16-bit copy replaces the float32 buffer;
// without checkpointing, the saved values it read last (sd_saved.go).
func (s *SDNet) packDone(i int) error {
	if err := s.packSaved(i); err != nil {
		return err
	}
	if s.ckSeg != ckptFirstPass {
		return nil
	}
	for _, v := range s.ck.packFwd[i] {
		t := s.vals[v]
		if t == nil {
			continue
		}
		h, err := s.toHalfOf(t, s.prec.dataType())
		if err != nil {
			return fmt.Errorf("gpu: pack value %d: %w", v, err)
		}
		s.packed[v] = h
		t.Free()
		s.vals[v] = nil
	}
	return nil
}

// unpackInputs restores the float32 values segment si reads from earlier
// segments out of their 16-bit copies.
func (s *SDNet) unpackInputs(si int) error {
	for _, v := range s.ck.segIn[si] {
		h := s.packed[v]
		if s.vals[v] != nil || h == nil {
			continue
		}
		t, err := s.dev.NewTensor(s.p.shapes[v]...)
		if err != nil {
			return err
		}
		if err := s.dev.FromHalf(t, h, s.prec.dataType()); err != nil {
			t.Free()
			return fmt.Errorf("gpu: unpack value %d: %w", v, err)
		}
		s.vals[v] = t
	}
	return nil
}

// dropInputs frees the unpacked float32 inputs of segment si (their
// 16-bit copies stay for the segments before it).
func (s *SDNet) dropInputs(si int) {
	for _, v := range s.ck.segIn[si] {
		if s.packed[v] != nil {
			s.freeValue(v)
		}
	}
}

// freePacked frees the 16-bit copies of the pass (nil-safe).
func (s *SDNet) freePacked() {
	for v, h := range s.packed {
		h.Free()
		delete(s.packed, v)
	}
}

// ckptForward is the first forward pass of a checkpointed step: inner
// values are dropped, no layer norm statistics are kept.
func (s *SDNet) ckptForward() error {
	s.ckSeg, s.noSave = ckptFirstPass, true
	defer func() { s.ckSeg, s.noSave = ckptOff, false }()
	return s.forwardAll()
}

// ckptBackward runs the backward pass segment by segment, last to first,
// recomputing each segment's forward first.
func (s *SDNet) ckptBackward() error {
	c, net := s.ck, s.p.net
	defer func() { s.ckSeg = ckptOff }()
	for si := len(c.segs) - 1; si >= 0; si-- {
		if !c.backward[si] {
			continue
		}
		sg := c.segs[si]
		s.ckSeg = si
		// later segments are done: this segment's kept outputs are
		// recomputed with the rest
		s.sweepSegment(sg)
		if err := s.unpackInputs(si); err != nil {
			return err
		}
		for i := sg[0]; i < sg[1]; i++ {
			l := net.Layers[i]
			if err := s.forward(i); err != nil {
				return fmt.Errorf("gpu: recompute layer %d (%s %s): %w", i, l.Kind, l.Name, err)
			}
			if err := s.prof.mark(sdLabel(s.p, l, "recompute")); err != nil {
				return err
			}
		}
		for i := sg[1] - 1; i >= sg[0]; i-- {
			if !s.p.backward[i] {
				continue
			}
			l := net.Layers[i]
			if err := s.backwardLayer(i); err != nil {
				return fmt.Errorf("gpu: backward layer %d (%s %s): %w", i, l.Kind, l.Name, err)
			}
			if err := s.backwardDone(i); err != nil {
				return err
			}
		}
		s.sweepSegment(sg)
		s.dropInputs(si)
	}
	return nil
}

// sweepSegment frees every non-persistent value the layers of sg produce
// (and their 16-bit copies).
func (s *SDNet) sweepSegment(sg [2]int) {
	for i := sg[0]; i < sg[1]; i++ {
		if v := s.p.net.Layers[i].Out; !s.p.persistent[v] {
			s.freeValue(v)
			if h := s.packed[v]; h != nil {
				h.Free()
				delete(s.packed, v)
			}
		}
	}
}

// Values of ckSeg outside a segment's recompute and backward.
const (
	ckptOff       = -1 // no checkpointing: the plan's lists as they are
	ckptFirstPass = -2 // the first forward pass of a checkpointed step
)

// freeList is what to free after layer i's forward (fwd) or backward.
func (s *SDNet) freeList(i int, fwd bool) []int {
	switch {
	case s.ckSeg == ckptFirstPass:
		return s.ck.freeFwd[i]
	case fwd && s.eval:
		return s.p.freeEval[i]
	case fwd:
		return s.p.freeFwd[i]
	default:
		return s.p.freeBwd[i]
	}
}

// mayFree reports whether a value on a free list may go now: never a
// persistent one; in a segment's recompute or backward only the
// segment's own values (its inputs belong to earlier segments).
func (s *SDNet) mayFree(v int) bool {
	if s.p.persistent[v] {
		return false
	}
	if s.ckSeg >= 0 {
		return s.ck.prodSeg[v] == s.ckSeg
	}
	return true
}
