package model

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Inputs are the data a net reads: Input (B*T, InChannels, H, W),
// Timesteps (B*T) and, for a net with a Context value, the conditioning
// sequence (B*T, Length, Channels).
type Inputs struct {
	Input, Timesteps, Context []float32
}

// Interpret runs the forward pass of net by walking its layers with the
// plain trainer/nn functions, without Gorgonia: the reference for any
// executor of the description (the GPU backend walks the same list).
// input is (B*T, InChannels, H, W), timesteps (B*T); it returns
// (B*T, OutChannels, H, W).
func Interpret(net *Net, p *Params, B, T, H, W int, input, timesteps []float32) ([]float32, error) {
	return InterpretInputs(net, p, B, T, H, W, Inputs{Input: input, Timesteps: timesteps})
}

// InterpretInputs is Interpret for a net that may take a context.
func InterpretInputs(net *Net, p *Params, B, T, H, W int, in Inputs) ([]float32, error) {
	vals, err := InterpretValues(net, p, B, T, H, W, in)
	if err != nil {
		return nil, err
	}
	return vals[net.Output], nil
}

// InterpretValues runs the forward pass and returns every value of the net
// (index = value id), for comparing intermediate activations.
func InterpretValues(net *Net, p *Params, B, T, H, W int, in Inputs) ([][]float32, error) {
	if err := net.CheckSize(H, W); err != nil {
		return nil, err
	}
	if err := net.Check(); err != nil {
		return nil, err
	}
	if B <= 0 || T <= 0 {
		return nil, fmt.Errorf("model: interpret: batch %d and frames %d must be > 0", B, T)
	}
	N := B * T
	size := func(v int) int { return net.Size(v, B, T, H, W) }
	vals := make([][]float32, len(net.Values))
	if len(in.Input) != size(net.Input) || len(in.Timesteps) != N {
		return nil, fmt.Errorf("model: interpret: input %d values, timesteps %d; want %d and %d", len(in.Input), len(in.Timesteps), size(net.Input), N)
	}
	vals[net.Input], vals[net.Timesteps] = in.Input, in.Timesteps
	if net.Context >= 0 {
		if len(in.Context) != size(net.Context) {
			return nil, fmt.Errorf("model: interpret: context has %d values, want %d (shape %v)", len(in.Context), size(net.Context), net.Shape(net.Context, B, T, H, W))
		}
		vals[net.Context] = in.Context
	}
	for i, l := range net.Layers {
		ps := make([][]float32, len(l.Params))
		for j, name := range l.Params {
			q := p.Get(name)
			if q == nil {
				return nil, fmt.Errorf("model: interpret: parameter %s missing", name)
			}
			ps[j] = q.Data
		}
		y := make([]float32, size(l.Out))
		if err := interpretLayer(net, l, ps, vals, y, B, T, H, W); err != nil {
			return nil, fmt.Errorf("model: interpret: layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		vals[l.Out] = y
	}
	return vals, nil
}

// optional returns ps[i] or nil (a layer without a bias).
func optional(ps [][]float32, i int) []float32 {
	if i < len(ps) {
		return ps[i]
	}
	return nil
}

func interpretLayer(net *Net, l Layer, ps [][]float32, vals [][]float32, y []float32, B, T, H, W int) error {
	N := B * T
	in := net.Values[l.In[0]]
	x := vals[l.In[0]]
	outV := net.Values[l.Out]
	h, w := 1, 1
	if !in.Vector && in.Seq == SeqNone {
		h, w = H/in.Scale, W/in.Scale
	}
	P := h * w
	if in.Seq != SeqNone && in.Seq != SeqFixed {
		P = (H / in.Scale) * (W / in.Scale)
	}
	switch l.Kind {
	case TimestepEmbed:
		nn.TimestepEmbedding(y, x, outV.Channels)
	case SinusoidalEmbed:
		nn.SinusoidalEmbedding(y, x, nn.SinusoidalShape{N: N, Dim: outV.Channels, FlipSinToCos: l.FlipSinToCos, FreqShift: l.FreqShift})
	case Linear:
		rows := len(x) / in.Channels
		nn.LinearForward(y, x, ps[0], optional(ps, 1), nn.LinearShape{N: rows, In: in.Channels, Out: outV.Channels})
	case SiLU:
		nn.SiLUForward(y, x)
	case Conv2D:
		ws := paramShape(net, l.Params[0])
		s := nn.Conv2DShape{N: N, C: in.Channels, H: h, W: w, K: ws[0], KH: ws[2], KW: ws[3], Stride: l.Stride, Pad: l.Pad}
		nn.Conv2DForward(y, x, ps[0], optional(ps, 1), s)
	case TemporalConv:
		nn.TemporalConvForward(y, x, ps[0], optional(ps, 1), nn.TemporalConvShape{B: B, T: T, C: in.Channels, K: outV.Channels, P: P})
	case GroupNorm:
		if !l.Joint {
			nn.GroupNormForward(y, x, ps[0], ps[1], nn.GroupNormShape{N: N, C: in.Channels, P: P, Groups: l.Groups, Eps: l.Eps})
			break
		}
		// (B, T, C, P) -> (B, C, T*P): each group's frames together
		sw := nn.SwapShape{A: B, X: T, Y: in.Channels, D: P}
		a, b := make([]float32, len(x)), make([]float32, len(x))
		nn.SwapAxesForward(a, x, sw)
		nn.GroupNormForward(b, a, ps[0], ps[1], nn.GroupNormShape{N: B, C: in.Channels, P: T * P, Groups: l.Groups, Eps: l.Eps})
		nn.SwapAxesForward(y, b, sw.Inverse())
	case LayerNorm:
		nn.LayerNormForward(y, x, ps[0], ps[1], nn.LayerNormShape{M: len(x) / in.Channels, D: in.Channels, Eps: l.Eps})
	case GEGLU:
		nn.GEGLUForward(y, x, nn.GEGLUShape{M: len(x) / in.Channels, F: outV.Channels})
	case SeqAttention:
		qs, ks := net.Shape(l.In[0], B, T, H, W), net.Shape(l.In[1], B, T, H, W)
		s := nn.SeqAttentionShape{N: qs[0], Lq: qs[1], Lk: ks[1], C: qs[2], Heads: l.Heads, Causal: l.Causal}
		if err := s.Validate(); err != nil {
			return err
		}
		nn.SeqAttentionForward(y, x, vals[l.In[1]], vals[l.In[2]], s)
	case ToTokens:
		nn.SwapAxesForward(y, x, nn.SwapShape{A: N, X: in.Channels, Y: P, D: 1})
	case ToFrames:
		nn.SwapAxesForward(y, x, nn.SwapShape{A: N, X: P, Y: in.Channels, D: 1})
	case ToTime:
		nn.SwapAxesForward(y, x, nn.SwapShape{A: B, X: T, Y: P, D: in.Channels})
	case FromTime:
		nn.SwapAxesForward(y, x, nn.SwapShape{A: B, X: P, Y: T, D: in.Channels})
	case Attention:
		nn.AttentionForward(y, x, nn.AttentionShape{B: B, T: T, C: in.Channels / 3, P: P, Heads: l.Heads, Temporal: l.Temporal})
	case Upsample:
		nn.Upsample2xForward(y, x, nn.ResampleShape{N: N, C: in.Channels, H: h, W: w})
	case Add:
		nn.AddForward(y, x, vals[l.In[1]])
	case AddChannel:
		nn.AddChannelForward(y, x, vals[l.In[1]], nn.ChannelShape{N: N, C: in.Channels, P: P})
	case Concat:
		nn.ConcatForward(y, x, vals[l.In[1]], nn.ConcatShape{N: N, CA: in.Channels, CB: net.Values[l.In[1]].Channels, P: P})
	default:
		return fmt.Errorf("unknown kind %q", l.Kind)
	}
	return nil
}
