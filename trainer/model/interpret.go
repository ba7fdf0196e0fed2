package model

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Interpret runs the forward pass of net by walking its layers with the
// plain trainer/nn functions, without Gorgonia: the reference for any
// executor of the description (the GPU backend walks the same list).
// input is (B*T, InChannels, H, W), timesteps (B*T); it returns
// (B*T, OutChannels, H, W).
func Interpret(net *Net, p *Params, B, T, H, W int, input, timesteps []float32) ([]float32, error) {
	cfg := net.Config
	if err := cfg.CheckSize(H, W); err != nil {
		return nil, err
	}
	if err := net.Check(); err != nil {
		return nil, err
	}
	N := B * T
	size := func(v Value) int {
		if v.Vector {
			return N * v.Channels
		}
		return N * v.Channels * (H / v.Scale) * (W / v.Scale)
	}
	vals := make([][]float32, len(net.Values))
	if len(input) != size(net.Values[net.Input]) || len(timesteps) != N {
		return nil, fmt.Errorf("model: interpret: input %d values, timesteps %d; want %d and %d", len(input), len(timesteps), size(net.Values[net.Input]), N)
	}
	vals[net.Input], vals[net.Timesteps] = input, timesteps
	for i, l := range net.Layers {
		ps := make([][]float32, len(l.Params))
		for j, name := range l.Params {
			q := p.Get(name)
			if q == nil {
				return nil, fmt.Errorf("model: interpret: parameter %s missing", name)
			}
			ps[j] = q.Data
		}
		in := net.Values[l.In[0]]
		x := vals[l.In[0]]
		outV := net.Values[l.Out]
		y := make([]float32, size(outV))
		h, w := 1, 1
		if !in.Vector {
			h, w = H/in.Scale, W/in.Scale
		}
		switch l.Kind {
		case TimestepEmbed:
			nn.TimestepEmbedding(y, x, outV.Channels)
		case Linear:
			nn.LinearForward(y, x, ps[0], ps[1], nn.LinearShape{N: N, In: in.Channels, Out: outV.Channels})
		case SiLU:
			nn.SiLUForward(y, x)
		case Conv2D:
			q := p.Get(l.Params[0])
			s := nn.Conv2DShape{N: N, C: in.Channels, H: h, W: w, K: q.Shape[0], KH: q.Shape[2], KW: q.Shape[3], Stride: l.Stride, Pad: l.Pad}
			nn.Conv2DForward(y, x, ps[0], ps[1], s)
		case TemporalConv:
			nn.TemporalConvForward(y, x, ps[0], ps[1], nn.TemporalConvShape{B: B, T: T, C: in.Channels, K: outV.Channels, P: h * w})
		case GroupNorm:
			nn.GroupNormForward(y, x, ps[0], ps[1], nn.GroupNormShape{N: N, C: in.Channels, P: h * w, Groups: l.Groups, Eps: l.Eps})
		case Attention:
			nn.AttentionForward(y, x, nn.AttentionShape{B: B, T: T, C: in.Channels / 3, P: h * w, Heads: l.Heads, Temporal: l.Temporal})
		case Upsample:
			nn.Upsample2xForward(y, x, nn.ResampleShape{N: N, C: in.Channels, H: h, W: w})
		case Add:
			nn.AddForward(y, x, vals[l.In[1]])
		case AddChannel:
			nn.AddChannelForward(y, x, vals[l.In[1]], nn.ChannelShape{N: N, C: in.Channels, P: h * w})
		case Concat:
			nn.ConcatForward(y, x, vals[l.In[1]], nn.ConcatShape{N: N, CA: in.Channels, CB: net.Values[l.In[1]].Channels, P: h * w})
		default:
			return nil, fmt.Errorf("model: interpret: layer %d: unknown kind %q", i, l.Kind)
		}
		vals[l.Out] = y
	}
	return vals[net.Output], nil
}
