package model

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Layer kinds of Stable Diffusion's VAE and CLIP text encoder that the
// UNets do not use. They are forward-only here (the VAE and the text
// encoder are frozen): the CPU interpreter runs them (RunNet).
const (
	// Conv2DPadEnd: a stride-Stride convolution over the input zero-padded
	// by one row at the bottom and one column at the right (SD's VAE
	// downsampler: padding (0,1,0,1), then a 3x3 stride-2 conv, no padding).
	Conv2DPadEnd LayerKind = "conv2d_pad_end"
	// QuickGELU: element-wise x*sigmoid(1.702x) (CLIP's activation).
	QuickGELU LayerKind = "quick_gelu"
	// GELU: element-wise exact (erf) GELU.
	GELU LayerKind = "gelu"
	// TokenEmbed: In[0] token ids (N, Length) -> (N, Length, C) =
	// token[id] + position[l]; Params token table (Vocab, C), position
	// table (MaxPositions, C).
	TokenEmbed LayerKind = "token_embedding"
)

// sdConv is a convolution under diffusers' names (name.weight, name.bias)
// with "same" padding for odd kernels.
func (b *builder) sdConv(name string, x, out, kernel int) int {
	return b.conv(name, x, out, kernel, 1, InitUniform)
}

func (b *builder) sdNorm(name string, x, groups int, eps float32) int {
	in := b.shape(x)
	gm := b.param(name+".weight", InitOnes, 0, in.Channels)
	bt := b.param(name+".bias", InitZeros, 0, in.Channels)
	return b.layer(Layer{Kind: GroupNorm, Name: name, In: []int{x}, Params: []string{gm, bt}, Groups: groups, Eps: eps}, in)
}

// seqLinear is a linear layer over the tokens of a sequence value.
func (b *builder) seqLinear(name string, x, out int, bias bool) int {
	in := b.shape(x)
	ps := []string{b.param(name+".weight", InitUniform, in.Channels, out, in.Channels)}
	if bias {
		ps = append(ps, b.param(name+".bias", InitUniform, in.Channels, out))
	}
	v := in
	v.Channels = out
	return b.layer(Layer{Kind: Linear, Name: name, In: []int{x}, Params: ps}, v)
}

func (b *builder) layerNorm(name string, x int, eps float32) int {
	in := b.shape(x)
	gm := b.param(name+".weight", InitOnes, 0, in.Channels)
	bt := b.param(name+".bias", InitZeros, 0, in.Channels)
	return b.layer(Layer{Kind: LayerNorm, Name: name, In: []int{x}, Params: []string{gm, bt}, Eps: eps}, in)
}

func (b *builder) unary(kind LayerKind, x int) int {
	return b.layer(Layer{Kind: kind, In: []int{x}}, b.shape(x))
}

// RunNet runs a VAE or text-encoder net on the CPU with the plain
// trainer/nn functions: inputs maps input value ids to their data, N is
// the batch and H, W the image size the net's scales refer to. It returns
// the values named in outputs (others are freed after their last use).
func RunNet(net *Net, p *Params, N, H, W int, inputs map[int][]float32, outputs ...int) (map[int][]float32, error) {
	if err := net.CheckSize(H, W); err != nil {
		return nil, err
	}
	if err := net.Check(); err != nil {
		return nil, err
	}
	if N <= 0 {
		return nil, fmt.Errorf("model: run: batch %d must be > 0", N)
	}
	size := func(v int) int { return net.Size(v, N, 1, H, W) }
	vals := make([][]float32, len(net.Values))
	for v, d := range inputs {
		if len(d) != size(v) {
			return nil, fmt.Errorf("model: run: input value %d has %d values, want %d (shape %v)", v, len(d), size(v), net.Shape(v, N, 1, H, W))
		}
		vals[v] = d
	}
	keep := map[int]bool{}
	for _, o := range outputs {
		keep[o] = true
	}
	last := make([]int, len(net.Values))
	for i, l := range net.Layers {
		for _, v := range l.In {
			last[v] = i
		}
	}
	for i, l := range net.Layers {
		ps := make([][]float32, len(l.Params))
		for j, name := range l.Params {
			q := p.Get(name)
			if q == nil {
				return nil, fmt.Errorf("model: run: parameter %s missing", name)
			}
			ps[j] = q.Data
		}
		for _, v := range l.In {
			if vals[v] == nil {
				return nil, fmt.Errorf("model: run: layer %d (%s %s) reads value %d, which has no data", i, l.Kind, l.Name, v)
			}
		}
		y := make([]float32, size(l.Out))
		var err error
		switch l.Kind {
		case Conv2DPadEnd, QuickGELU, GELU, TokenEmbed:
			err = runSDLayer(net, l, ps, vals, y, N, H, W)
		default:
			err = interpretLayer(net, l, ps, vals, y, N, 1, H, W)
		}
		if err != nil {
			return nil, fmt.Errorf("model: run: layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		vals[l.Out] = y
		for _, v := range l.In {
			if last[v] == i && !keep[v] {
				vals[v] = nil
			}
		}
	}
	out := map[int][]float32{}
	for _, o := range outputs {
		if vals[o] == nil {
			return nil, fmt.Errorf("model: run: output value %d was not computed", o)
		}
		out[o] = vals[o]
	}
	return out, nil
}

func runSDLayer(net *Net, l Layer, ps [][]float32, vals [][]float32, y []float32, N, H, W int) error {
	in := net.Values[l.In[0]]
	x := vals[l.In[0]]
	switch l.Kind {
	case QuickGELU:
		nn.QuickGELUForward(y, x)
	case GELU:
		nn.GELUForward(y, x)
	case TokenEmbed:
		out := net.Values[l.Out]
		vocab := len(ps[0]) / out.Channels
		if len(ps[1]) < in.Length*out.Channels {
			return fmt.Errorf("position table has %d rows, want at least %d", len(ps[1])/out.Channels, in.Length)
		}
		return nn.TokenEmbeddingForward(y, x, ps[0], ps[1], nn.TokenEmbeddingShape{N: N, L: in.Length, D: out.Channels, Vocab: vocab})
	case Conv2DPadEnd:
		h, w := H/in.Scale, W/in.Scale
		ps0 := nn.PadEndShape{N: N, C: in.Channels, H: h, W: w}
		padded := make([]float32, ps0.OutLen())
		nn.PadEndForward(padded, x, ps0)
		ws := paramShape(net, l.Params[0])
		s := nn.Conv2DShape{N: N, C: in.Channels, H: h + 1, W: w + 1, K: ws[0], KH: ws[2], KW: ws[3], Stride: l.Stride}
		if s.OutLen() != len(y) {
			return fmt.Errorf("padded conv gives %d values, want %d", s.OutLen(), len(y))
		}
		nn.Conv2DForward(y, padded, ps[0], optional(ps, 1), s)
	}
	return nil
}
