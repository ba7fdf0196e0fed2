package nn

import (
	G "gorgonia.org/gorgonia"
)

// OpKind names a kernel, forward or gradient, for executors that walk a
// Gorgonia graph built with this package (the GPU backend). Inputs are
// listed in node order; every kernel overwrites its output.
type OpKind string

const (
	KindConv2D               OpKind = "conv2d"                 // x, w[, b] -> y; Conv2DShape
	KindConv2DBackwardData   OpKind = "conv2d_backward_data"   // dy, w -> dx; Conv2DShape
	KindConv2DBackwardFilter OpKind = "conv2d_backward_filter" // dy, x -> dw; Conv2DShape
	KindChannelSum           OpKind = "channel_sum"            // dy -> db (bias gradient); ChannelShape
	KindTemporalConv         OpKind = "temporal_conv"          // x, w[, b] -> y; TemporalConvShape
	KindTemporalConvData     OpKind = "temporal_conv_backward_data"
	KindTemporalConvFilter   OpKind = "temporal_conv_backward_filter"
	KindGroupNorm            OpKind = "group_norm"                // x, gamma, beta -> y; GroupNormShape
	KindGroupNormData        OpKind = "group_norm_backward_data"  // dy, x, gamma -> dx
	KindGroupNormGamma       OpKind = "group_norm_backward_gamma" // dy, x -> dgamma
	KindSiLU                 OpKind = "silu"                      // x -> y; ChannelShape{N: len}
	KindSiLUBackward         OpKind = "silu_backward"             // dy, x -> dx
	KindLinear               OpKind = "linear"                    // x, w[, b] -> y; LinearShape
	KindLinearData           OpKind = "linear_backward_data"      // dy, w -> dx
	KindLinearWeight         OpKind = "linear_backward_weight"    // dy, x -> dw
	KindAttention            OpKind = "attention"                 // qkv -> out; AttentionShape
	KindAttentionBackward    OpKind = "attention_backward"        // dout, qkv -> dqkv
	KindUpsample             OpKind = "upsample2x"                // x -> y; ResampleShape
	KindUpsampleBackward     OpKind = "upsample2x_backward"       // dy -> dx
	KindAdd                  OpKind = "add"                       // a, b -> a+b (gradient: dy to both)
	KindAddChannel           OpKind = "add_channel"               // x, e -> y; ChannelShape (dx = dy)
	KindAddChannelBackward   OpKind = "add_channel_backward"      // dy -> de
	KindConcat               OpKind = "concat"                    // a, b -> y; ConcatShape
	KindConcatBackward       OpKind = "concat_backward"           // dy -> da (Part 0) or db (Part 1)
	KindTimestepEmbedding    OpKind = "timestep_embedding"        // t -> emb; EmbeddingShape
	KindFrameMSE             OpKind = "frame_mse"                 // pred, target -> scalar; FrameMSEShape
	KindFrameMSEBackward     OpKind = "frame_mse_backward"        // pred, target, g -> dpred

	KindLayerNorm            OpKind = "layer_norm"                // x, gamma, beta -> y; LayerNormShape
	KindLayerNormData        OpKind = "layer_norm_backward_data"  // dy, x, gamma -> dx
	KindLayerNormGamma       OpKind = "layer_norm_backward_gamma" // dy, x -> dgamma
	KindGEGLU                OpKind = "geglu"                     // x (M, 2F) -> y (M, F); GEGLUShape
	KindGEGLUBackward        OpKind = "geglu_backward"            // dy, x -> dx
	KindSeqAttention         OpKind = "seq_attention"             // q, k, v -> out; SeqAttentionShape
	KindSeqAttentionBackward OpKind = "seq_attention_backward"    // dout, q, k, v -> dq (Part 0), dk (1) or dv (2)
	KindSwapAxes             OpKind = "swap_axes"                 // x -> y; SwapShape (gradient: the inverse swap)
	KindSinusoidalEmbedding  OpKind = "sinusoidal_embedding"      // t -> emb; SinusoidalShape
)

// EmbeddingShape describes the sinusoidal timestep embedding (N) -> (N, Dim).
type EmbeddingShape struct {
	N, Dim int
}

// OpSpec describes one node's kernel.
type OpSpec struct {
	Kind OpKind
	// Shape is the kernel's shape struct (Conv2DShape, TemporalConvShape,
	// GroupNormShape, LinearShape, AttentionShape, ResampleShape,
	// ChannelShape, ConcatShape, EmbeddingShape, FrameMSEShape,
	// LayerNormShape, GEGLUShape, SeqAttentionShape, SwapShape or
	// SinusoidalShape).
	Shape any
	// Bias reports a bias input on conv2d, temporal_conv and linear.
	Bias bool
	// Part selects the half of a concat_backward or the input of a
	// seq_attention_backward.
	Part int
	// WeightGrad reports a kernel computing a parameter's gradient.
	WeightGrad bool
}

// SpecOf returns the kernel description of a node built by this package.
func SpecOf(n *G.Node) (OpSpec, bool) {
	o, ok := n.Op().(*Op)
	if !ok {
		return OpSpec{}, false
	}
	return o.Spec(), true
}

// Spec returns the op's kernel description.
func (o *Op) Spec() OpSpec {
	s := specOf(o.k)
	_, s.WeightGrad = o.k.(WeightGrad)
	return s
}

func specOf(k kernel) OpSpec {
	switch k := k.(type) {
	case *conv2dK:
		return OpSpec{Kind: KindConv2D, Shape: k.s, Bias: k.hasBias}
	case *conv2dDataK:
		return OpSpec{Kind: KindConv2DBackwardData, Shape: k.s}
	case *conv2dFilterK:
		return OpSpec{Kind: KindConv2DBackwardFilter, Shape: k.s}
	case *chanSumK:
		return OpSpec{Kind: KindChannelSum, Shape: k.s}
	case *tconvFwd:
		return OpSpec{Kind: KindTemporalConv, Shape: k.s, Bias: k.hasBias}
	case *tconvData:
		return OpSpec{Kind: KindTemporalConvData, Shape: k.s}
	case *tconvFilterK:
		return OpSpec{Kind: KindTemporalConvFilter, Shape: k.s}
	case *gnK:
		return OpSpec{Kind: KindGroupNorm, Shape: k.s}
	case *gnDataK:
		return OpSpec{Kind: KindGroupNormData, Shape: k.s}
	case *gnGammaK:
		return OpSpec{Kind: KindGroupNormGamma, Shape: k.s}
	case *siluK:
		return OpSpec{Kind: KindSiLU, Shape: ChannelShape{N: k.shape.TotalSize(), C: 1, P: 1}}
	case *siluBwdK:
		return OpSpec{Kind: KindSiLUBackward, Shape: ChannelShape{N: k.shape.TotalSize(), C: 1, P: 1}}
	case *linearK:
		return OpSpec{Kind: KindLinear, Shape: k.s, Bias: k.hasBias}
	case *linearDataK:
		return OpSpec{Kind: KindLinearData, Shape: k.s}
	case *linearWK:
		return OpSpec{Kind: KindLinearWeight, Shape: k.s}
	case *attnK:
		return OpSpec{Kind: KindAttention, Shape: k.s}
	case *attnBwdK:
		return OpSpec{Kind: KindAttentionBackward, Shape: k.s}
	case *upK:
		return OpSpec{Kind: KindUpsample, Shape: k.s}
	case *upBwdK:
		return OpSpec{Kind: KindUpsampleBackward, Shape: k.s}
	case *addK:
		return OpSpec{Kind: KindAdd, Shape: ChannelShape{N: k.shape.TotalSize(), C: 1, P: 1}}
	case *addChanK:
		return OpSpec{Kind: KindAddChannel, Shape: k.s}
	case *addChanBwdK:
		return OpSpec{Kind: KindAddChannelBackward, Shape: k.s}
	case *concatK:
		return OpSpec{Kind: KindConcat, Shape: k.s}
	case *splitK:
		return OpSpec{Kind: KindConcatBackward, Shape: k.s, Part: k.part}
	case *embedK:
		return OpSpec{Kind: KindTimestepEmbedding, Shape: EmbeddingShape{N: k.n, Dim: k.dim}}
	case *mseK:
		return OpSpec{Kind: KindFrameMSE, Shape: k.s}
	case *mseBwdK:
		return OpSpec{Kind: KindFrameMSEBackward, Shape: k.s}
	case *lnK:
		return OpSpec{Kind: KindLayerNorm, Shape: k.s}
	case *lnDataK:
		return OpSpec{Kind: KindLayerNormData, Shape: k.s}
	case *lnGammaK:
		return OpSpec{Kind: KindLayerNormGamma, Shape: k.s}
	case *gegluK:
		return OpSpec{Kind: KindGEGLU, Shape: k.s}
	case *gegluBwdK:
		return OpSpec{Kind: KindGEGLUBackward, Shape: k.s}
	case *seqAttnK:
		return OpSpec{Kind: KindSeqAttention, Shape: k.s}
	case *seqAttnBwdK:
		return OpSpec{Kind: KindSeqAttentionBackward, Shape: k.s, Part: k.part}
	case *swapK:
		return OpSpec{Kind: KindSwapAxes, Shape: k.s}
	case *sinEmbedK:
		return OpSpec{Kind: KindSinusoidalEmbedding, Shape: k.s}
	}
	return OpSpec{}
}

// Inputs returns a node's input nodes in op order.
func Inputs(n *G.Node) []*G.Node {
	it := n.Graph().From(n.ID())
	var out []*G.Node
	for it.Next() {
		if c, ok := it.Node().(*G.Node); ok {
			out = append(out, c)
		}
	}
	return out
}
