package gpu

import (
	"errors"
	"os"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// Fused 16-bit convolution chains of forward-only passes (inference: the
// VAE's encode and decode, sampling). A 16-bit NHWC convolution converts
// its float32 input anyway, so what comes right before it folds into that
// conversion (cuda.Conv2DForwardHalfFused): a GroupNorm followed by SiLU
// (the normalised and activated float32 tensors are never written), a
// nearest upsample (nor the upsampled one), SD's end padding; and an Add
// right after it takes the other addend as the convolution's residual.
// Where the chain's source or the other addend dies in the chain, the
// output reuses its memory: with the decoder's 256-channel 512x512 frames
// that is what keeps decode under PyTorch's float16 peak. Training passes
// keep the unfused layers (their backward reads the intermediates).

// halfFused turns the chains on (PIPELINE_SD_HALF_FUSED=0: off, for
// benchmarks and comparisons).
var halfFused = os.Getenv("PIPELINE_SD_HALF_FUSED") != "0"

// halfChain is one fused convolution: layers first..last of the net.
type halfChain struct {
	first, last int
	gn          int // the GroupNorm (its SiLU at gn+1), or -1
	up          int // the Upsample, or -1
	conv        int
	add         int // the Add after the conv, or -1
	other       int // the Add's other input value
	internal    []int
}

// halfChains are a net's chains by first layer, and which ran fused in
// this pass.
type halfChains struct {
	first map[int]*halfChain
	inner map[int]int // inner layer -> its chain's first layer
	ran   map[int]bool
	off   map[int]bool // chains cuDNN declined
}

// onlyReader reports whether layer j is the only reader of value v (as
// one of its inputs, once) and v is not the net's output.
func onlyReader(net *model.Net, v, j int) bool {
	if v == net.Output {
		return false
	}
	n := 0
	for i, l := range net.Layers {
		for _, u := range l.In {
			if u == v {
				if i != j {
					return false
				}
				n++
			}
		}
	}
	return n == 1
}

func (s *SDNet) findHalfChains() *halfChains {
	net := s.p.net
	hc := &halfChains{first: map[int]*halfChain{}, inner: map[int]int{}, ran: map[int]bool{}, off: map[int]bool{}}
	isHalfConv := func(j int) bool {
		if j >= len(net.Layers) {
			return false
		}
		l := net.Layers[j]
		return (l.Kind == model.Conv2D || l.Kind == model.Conv2DPadEnd) && len(l.Params) > 0 && s.halfW[l.Params[0]] != nil
	}
	for i := 0; i < len(net.Layers); i++ {
		l := net.Layers[i]
		c := &halfChain{first: i, gn: -1, up: -1, add: -1, other: -1}
		switch {
		case l.Kind == model.GroupNorm && !l.Joint && fusable(net, i) && isHalfConv(i+2) &&
			net.Layers[i+2].Kind == model.Conv2D && net.Layers[i+2].In[0] == net.Layers[i+1].Out && onlyReader(net, net.Layers[i+1].Out, i+2):
			c.gn, c.conv = i, i+2
			c.internal = []int{l.Out, net.Layers[i+1].Out}
		case l.Kind == model.Upsample && isHalfConv(i+1) && net.Layers[i+1].Kind == model.Conv2D &&
			net.Layers[i+1].In[0] == l.Out && onlyReader(net, l.Out, i+1):
			c.up, c.conv = i, i+1
			c.internal = []int{l.Out}
		case isHalfConv(i):
			c.conv = i
		default:
			continue
		}
		cl := net.Layers[c.conv]
		if j := c.conv + 1; j < len(net.Layers) && net.Layers[j].Kind == model.Add && onlyReader(net, cl.Out, j) {
			a := net.Layers[j]
			c.add, c.other = j, a.In[0]
			if a.In[0] == cl.Out {
				c.other = a.In[1]
			}
			c.internal = append(c.internal, cl.Out)
		}
		if c.gn < 0 && c.up < 0 && c.add < 0 && cl.Kind != model.Conv2DPadEnd {
			continue // a plain convolution: nothing to fuse
		}
		c.last = c.conv
		if c.add >= 0 {
			c.last = c.add
		}
		hc.first[i] = c
		for j := i + 1; j <= c.last; j++ {
			hc.inner[j] = i
		}
		i = c.last
	}
	return hc
}

// forwardHalfFused runs layer i's fused chain in a forward-only 16-bit NHWC
// pass (done: the layer was handled, also when it is an inner layer of a
// chain already run); else it leaves layer i to forward.
func (s *SDNet) forwardHalfFused(i int) (done bool, err error) {
	if !s.eval || !halfFused || !s.prec.Half() || !convNHWC || s.ckSeg != ckptOff {
		return false, nil
	}
	if s.hf == nil {
		s.hf = s.findHalfChains()
	}
	c, ok := s.hf.first[i]
	if !ok {
		if p, in := s.hf.inner[i]; in {
			return s.hf.ran[p], nil
		}
		return false, nil
	}
	s.hf.ran[i] = false
	if s.hf.off[i] {
		return false, nil
	}
	for _, v := range c.internal {
		if s.p.persistent[v] {
			return false, nil
		}
	}
	net := s.p.net
	first, cl := net.Layers[c.first], net.Layers[c.conv]
	src := first.In[0]
	x := s.vals[src]
	if x == nil {
		return true, errors.New("chain input was freed or never computed")
	}
	outV := cl.Out
	if c.add >= 0 {
		outV = net.Layers[c.add].Out
	}
	cs := s.convShape(cl)
	f := cuda.HalfConvFused{Source: cuda.SourceSame}
	if c.gn >= 0 {
		gl := net.Layers[c.gn]
		f.Gamma, f.Beta, f.Groups, f.Eps = s.param(gl, 0), s.param(gl, 1), gl.Groups, gl.Eps
	}
	switch {
	case c.up >= 0:
		f.Source = cuda.SourceUpsample
	case cl.Kind == model.Conv2DPadEnd:
		f.Source = cuda.SourcePadEnd
	}
	// the output: the other addend's or the source's memory where it dies here
	var y *cuda.Tensor
	reused := -1
	if c.add >= 0 {
		r := s.vals[c.other]
		if r == nil {
			return true, errors.New("residual input was freed or never computed")
		}
		f.Residual = r
		if c.other != src && s.diesIn(c, c.other) {
			y, reused = r, c.other
		}
	}
	if y == nil && s.diesIn(c, src) && x.Len() == numel(s.p.shapes[outV]) && (c.add < 0 || c.other != src) {
		y, reused = x, src
	}
	if y == nil {
		if y, err = s.dev.NewTensor(s.p.shapes[outV]...); err != nil {
			return true, err
		}
	}
	err = s.dev.Conv2DForwardHalfFused(y, x, s.halfW[cl.Params[0]], s.param(cl, 1), cs, s.halfConv(), f)
	if errors.Is(err, cuda.ErrHalfConvDeclined) {
		if reused < 0 {
			y.Free()
		}
		s.hf.off[i] = true
		return false, nil
	}
	if err != nil {
		if reused < 0 {
			y.Free()
		}
		return true, err
	}
	if reused >= 0 {
		s.vals[reused] = nil
		y.Shape = append([]int(nil), s.p.shapes[outV]...)
	}
	s.vals[outV] = y
	s.hf.ran[i] = true
	for li := c.first; li <= c.last; li++ {
		for _, v := range s.p.freeEval[li] {
			if v != outV && s.mayFree(v) {
				s.freeValue(v)
			}
		}
	}
	return true, nil
}

// diesIn reports whether value v is freed within chain c in this pass.
func (s *SDNet) diesIn(c *halfChain, v int) bool {
	if !s.mayFree(v) {
		return false
	}
	for li := c.first; li <= c.last; li++ {
		for _, u := range s.p.freeEval[li] {
			if u == v {
				return true
			}
		}
	}
	return false
}

// fwdLabel is layer i's profile label after its forward: a fused chain's
// first layer names the chain ("fused group_norm+silu+conv2d+add fwd"),
// its inner layers keep their own (they take no time).
func (s *SDNet) fwdLabel(i int, l model.Layer) string {
	if !s.eval || s.hf == nil || !s.hf.ran[i] {
		return sdLabel(s.p, l, "fwd")
	}
	c := s.hf.first[i]
	name := "fused "
	for li := c.first; li <= c.last; li++ {
		if li > c.first {
			name += "+"
		}
		name += string(s.p.net.Layers[li].Kind)
	}
	return name + " fwd"
}
