package gpu

import (
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// A GroupNorm whose output only feeds the SiLU right after it (twice in
// every ResBlock, and before the output conv) runs fused with it: the
// forward pass writes silu(groupnorm(x)) straight from x and the group
// statistics, so the normalised tensor is never written, read back or kept
// for the backward pass; the backward pass recomputes it from x (which the
// group norm keeps anyway) inside the same kernels that compute dx and, when
// trainable, dgamma and dbeta (trainer/cuda's GroupNormSiLU ops).

// fusable reports whether layer i is a GroupNorm fused with the SiLU at i+1.
func fusable(net *model.Net, i int) bool {
	return fusablePair(net, i, model.GroupNorm, model.SiLU)
}

// fusableTconv returns the AddChannel layer that is the only reader of
// temporal conv i's output (as its first input), or -1. That AddChannel
// then adds the conv's bias and the embedding in one in-place pass.
func fusableTconv(net *model.Net, i int) int {
	l := net.Layers[i]
	if l.Kind != model.TemporalConv || len(l.Params) != 2 || l.Out == net.Output {
		return -1
	}
	reader := -1
	for j, o := range net.Layers {
		for k, v := range o.In {
			if v != l.Out {
				continue
			}
			if reader >= 0 || o.Kind != model.AddChannel || k != 0 {
				return -1
			}
			reader = j
		}
	}
	return reader
}

// fusablePair: layer i of kind a feeds layer i+1 of kind b as its first
// input, and nothing else reads layer i's output.
func fusablePair(net *model.Net, i int, a, b model.LayerKind) bool {
	if i+1 >= len(net.Layers) {
		return false
	}
	l, next := net.Layers[i], net.Layers[i+1]
	if l.Kind != a || next.Kind != b || next.In[0] != l.Out || l.Out == net.Output {
		return false
	}
	for j, o := range net.Layers {
		for k, v := range o.In {
			if v == l.Out && (j != i+1 || k != 0) {
				return false
			}
		}
	}
	return true
}
