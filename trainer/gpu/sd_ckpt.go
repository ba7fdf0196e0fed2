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
}

func newCkptPlan(p *sdPlan) *ckptPlan {
	net := p.net
	nl, nv := len(net.Layers), len(net.Values)
	c := &ckptPlan{segs: net.CheckpointSegments(), segOf: make([]int, nl), prodSeg: make([]int, nv),
		boundary: make([]bool, nv), freeFwd: make([][]int, nl)}
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
	for i, l := range net.Layers {
		v := l.Out
		if p.persistent[v] || c.boundary[v] {
			continue
		}
		at := lastRead[v]
		if at < 0 {
			at = i
		}
		c.freeFwd[at] = append(c.freeFwd[at], v)
	}
	return c
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
	}
	return nil
}

// sweepSegment frees every non-persistent value the layers of sg produce.
func (s *SDNet) sweepSegment(sg [2]int) {
	for i := sg[0]; i < sg[1]; i++ {
		if v := s.p.net.Layers[i].Out; !s.p.persistent[v] {
			s.freeValue(v)
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
