package gpu

import (
	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// SDFeedForwardChunkBytes bounds the feed-forward intermediates (a chunk
// of rows' 2F projection and F GEGLU output, float32) a forward-only pass
// holds at once: a transformer block's feed-forward whose intermediates
// exceed it runs over chunks of rows (frames and positions alike: it is
// position-wise). Sampling 120 frames with guidance puts 240 frames
// through the UNet, where the level-0 feed-forward's intermediates are
// 15 GB; memory planners use the same figure (trainer/plan).
const SDFeedForwardChunkBytes = 512 << 20

// ffChunkBytes is the budget the executor uses (tests lower it).
var ffChunkBytes int64 = SDFeedForwardChunkBytes

// ffChunks are a net's feed-forward chains by the index of their first
// layer, and the layers run with them.
type ffChunks struct {
	first map[int]model.FeedForwardChain
	inner map[int]int  // inner layer -> its chain's first layer
	ran   map[int]bool // first layer -> run in chunks in this pass
}

func newFFChunks(n *model.Net) *ffChunks {
	f := &ffChunks{first: map[int]model.FeedForwardChain{}, inner: map[int]int{}, ran: map[int]bool{}}
	for _, c := range n.FeedForwardChains() {
		f.first[c.Proj] = c
		f.inner[c.GEGLU], f.inner[c.Out] = c.Proj, c.Proj
	}
	return f
}

// FeedForwardChunkRows is the rows per chunk of a feed-forward of 2F and F
// intermediates over rows rows (rows itself when they fit the budget).
func FeedForwardChunkRows(rows, f2, f int) int {
	per := int64(f2+f) * 4
	if int64(rows)*per <= ffChunkBytes {
		return rows
	}
	return max(1, int(ffChunkBytes/per))
}

// forwardChunked runs, in a forward-only pass, layer i's feed-forward chain
// over chunks of rows (done: the layer was handled, also when it is an
// inner layer of a chain already run); else it leaves layer i to forward.
func (s *SDNet) forwardChunked(i int) (done bool, err error) {
	if !s.eval {
		return false, nil
	}
	if s.ff == nil {
		s.ff = newFFChunks(s.p.net)
	}
	c, ok := s.ff.first[i]
	if !ok {
		if p, in := s.ff.inner[i]; in {
			return s.ff.ran[p], nil
		}
		return false, nil
	}
	s.ff.ran[i] = false
	net := s.p.net
	proj, geglu, out := net.Layers[c.Proj], net.Layers[c.GEGLU], net.Layers[c.Out]
	if s.p.persistent[proj.Out] || s.p.persistent[geglu.Out] {
		return false, nil
	}
	rows, cin := s.rowsOf(proj.In[0])
	f2, f, cout := net.Values[proj.Out].Channels, net.Values[geglu.Out].Channels, net.Values[out.Out].Channels
	chunk := FeedForwardChunkRows(rows, f2, f)
	if chunk == rows {
		return false, nil
	}
	x := s.vals[proj.In[0]]
	y, err := s.dev.NewTensor(s.p.shapes[out.Out]...)
	if err != nil {
		return true, err
	}
	s.vals[out.Out] = y
	t1, err := s.dev.NewTensor(chunk * f2)
	if err != nil {
		return true, err
	}
	defer t1.Free()
	t2, err := s.dev.NewTensor(chunk * f)
	if err != nil {
		return true, err
	}
	defer t2.Free()
	for r0 := 0; r0 < rows; r0 += chunk {
		n := min(chunk, rows-r0)
		var xv, yv, a, g *cuda.Tensor
		if xv, err = x.View(r0*cin, n, cin); err != nil {
			return true, err
		}
		if yv, err = y.View(r0*cout, n, cout); err != nil {
			return true, err
		}
		if a, err = t1.View(0, n, f2); err != nil {
			return true, err
		}
		if g, err = t2.View(0, n, f); err != nil {
			return true, err
		}
		if err := s.linearForward(proj, a, xv, nn.LinearShape{N: n, In: cin, Out: f2}); err != nil {
			return true, err
		}
		if err := s.k.geglu(g.Ptr(), a.Ptr(), int64(n), f); err != nil {
			return true, err
		}
		if err := s.linearForward(out, yv, g, nn.LinearShape{N: n, In: f, Out: cout}); err != nil {
			return true, err
		}
	}
	s.ff.ran[i] = true
	for _, li := range []int{c.Proj, c.GEGLU, c.Out} {
		for _, v := range s.p.freeEval[li] {
			if !s.p.persistent[v] {
				s.freeValue(v)
			}
		}
	}
	return true, nil
}
