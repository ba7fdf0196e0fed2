package model

// FeedForwardChain is a transformer block's feed-forward as layer indices:
// Proj (a Linear to 2F), GEGLU (to F) and Out (a Linear back), each reading
// only the one before, whose two intermediate values nothing else reads.
// A forward-only executor can run it over chunks of rows, holding the
// intermediates of one chunk at a time (the largest values of an SD UNet's
// forward pass: 8x and 4x the block's width at full resolution).
type FeedForwardChain struct{ Proj, GEGLU, Out int }

// FeedForwardChains lists n's feed-forward chains in layer order.
func (n *Net) FeedForwardChains() []FeedForwardChain {
	readers := make([]int, len(n.Values))
	for _, l := range n.Layers {
		for _, v := range l.In {
			readers[v]++
		}
	}
	var out []FeedForwardChain
	for i := 0; i+2 < len(n.Layers); i++ {
		p, g, o := n.Layers[i], n.Layers[i+1], n.Layers[i+2]
		if p.Kind != Linear || g.Kind != GEGLU || o.Kind != Linear || len(g.In) != 1 || len(o.In) != 1 {
			continue
		}
		if g.In[0] != p.Out || o.In[0] != g.Out || readers[p.Out] != 1 || readers[g.Out] != 1 || p.Out == n.Output || g.Out == n.Output {
			continue
		}
		out = append(out, FeedForwardChain{i, i + 1, i + 2})
		i += 2
	}
	return out
}
