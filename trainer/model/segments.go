package model

import "strings"

// CheckpointBlock is the block a layer belongs to for activation
// checkpointing: diffusers' resnet, transformer, downsampler or upsampler
// ("down_blocks.0.resnets.1"), else the first name component; unnamed
// layers join the block of the layer before them (prev).
func CheckpointBlock(name, prev string) string {
	if name == "" {
		return prev
	}
	parts := strings.Split(name, ".")
	for i, p := range parts {
		if (p == "resnets" || p == "attentions" || p == "downsamplers" || p == "upsamplers") && i+1 < len(parts) {
			return strings.Join(parts[:i+2], ".")
		}
	}
	return parts[0]
}

// CheckpointSegments splits the layers into runs of consecutive layers of
// one block each (CheckpointBlock), as [first, end) index pairs in order.
func (n *Net) CheckpointSegments() [][2]int {
	var segs [][2]int
	g := ""
	for i, l := range n.Layers {
		ng := CheckpointBlock(l.Name, g)
		if i == 0 || ng != g {
			segs = append(segs, [2]int{i, i + 1})
		} else {
			segs[len(segs)-1][1] = i + 1
		}
		g = ng
	}
	return segs
}

// BackwardReads reports which inputs of l its backward pass reads (a
// planned executor keeps them alive from the forward pass until then):
// a linear or convolution reads its input only to form a trained weight's
// gradient (wTrained), the norms and activations read theirs, attention
// reads q, k and v (it recomputes the scores).
func BackwardReads(l Layer, wTrained bool) []bool {
	r := make([]bool, len(l.In))
	switch l.Kind {
	case Linear, Conv2D, Conv2DPadEnd, TemporalConv:
		r[0] = wTrained
	case GroupNorm, LayerNorm, SiLU, GELU, QuickGELU, GEGLU:
		r[0] = true
	case SeqAttention:
		for j := range r {
			r[j] = true
		}
	}
	return r
}
