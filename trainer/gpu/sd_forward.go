package gpu

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Op shapes of the SD executor's layers, from the plan's value shapes.

func (s *SDNet) param(l model.Layer, i int) *cuda.Tensor {
	if i >= len(l.Params) {
		return nil
	}
	return s.weights[l.Params[i]]
}

// frame returns (N, C, h, w) of a frame value.
func (s *SDNet) frame(v int) (n, c, h, w int) {
	sh := s.p.shapes[v]
	return sh[0], sh[1], sh[2], sh[3]
}

func (s *SDNet) convShape(l model.Layer) nn.Conv2DShape {
	n, c, h, w := s.frame(l.In[0])
	ws := s.weightShape(l.Params[0])
	cs := nn.Conv2DShape{N: n, C: c, H: h, W: w, K: ws[0], KH: ws[2], KW: ws[3], Stride: max(1, l.Stride), Pad: l.Pad}
	if l.Kind == model.Conv2DPadEnd {
		cs.H, cs.W, cs.Pad = h+1, w+1, 0
	}
	return cs
}

func (s *SDNet) tconvShape(l model.Layer) nn.TemporalConvShape {
	_, c, h, w := s.frame(l.In[0])
	return nn.TemporalConvShape{B: s.p.B, T: s.p.T, C: c, K: s.weights[l.Params[0]].Shape[0], P: h * w}
}

// gnShape is the group norm of layer l over its (permuted, when joint) input.
func (s *SDNet) gnShape(l model.Layer) nn.GroupNormShape {
	n, c, h, w := s.frame(l.In[0])
	if l.Joint {
		return nn.GroupNormShape{N: s.p.B, C: c, P: s.p.T * h * w, Groups: l.Groups, Eps: l.Eps}
	}
	return nn.GroupNormShape{N: n, C: c, P: h * w, Groups: l.Groups, Eps: l.Eps}
}

// jointPerm is the (B, T, C, P) <-> (B, C, T, P) swap of a joint group norm.
func (s *SDNet) jointPerm(v int, back bool) []int {
	_, c, h, w := s.frame(v)
	if back {
		return []int{s.p.B, c, s.p.T, h * w}
	}
	return []int{s.p.B, s.p.T, c, h * w}
}

// rowsOf is the number of rows of Channels values a value holds.
func (s *SDNet) rowsOf(v int) (rows, d int) {
	sh := s.p.shapes[v]
	d = s.p.net.Values[v].Channels
	return numel(sh) / d, d
}

// swapPerm is the permutation of a ToTokens/ToFrames/ToTime/FromTime layer
// (input shape, axis order); the backward pass applies it to the output
// gradient with the inverse.
func (s *SDNet) swapPerm(l model.Layer, backward bool) (in, perm []int) {
	v := l.In[0]
	if backward {
		v = l.Out
	}
	sh := s.p.shapes[v]
	switch l.Kind {
	case model.ToTokens:
		if backward { // (N, P, C) -> (N, C, P)
			return []int{sh[0], sh[1], sh[2]}, []int{0, 2, 1}
		}
		return []int{sh[0], sh[1], sh[2] * sh[3]}, []int{0, 2, 1}
	case model.ToFrames:
		if backward { // (N, C, h, w) -> (N, P, C)
			return []int{sh[0], sh[1], sh[2] * sh[3]}, []int{0, 2, 1}
		}
		return []int{sh[0], sh[1], sh[2]}, []int{0, 2, 1}
	case model.ToTime:
		// forward (B, T, P, C) -> (B, P, T, C); backward the other way
		c := sh[2]
		if backward {
			P := sh[0] / s.p.B
			return []int{s.p.B, P, s.p.T, c}, []int{0, 2, 1, 3}
		}
		return []int{s.p.B, s.p.T, sh[1], c}, []int{0, 2, 1, 3}
	default: // FromTime: forward (B, P, T, C) -> (B, T, P, C)
		c := sh[2]
		if backward {
			return []int{s.p.B, s.p.T, sh[1], c}, []int{0, 2, 1, 3}
		}
		P := sh[0] / s.p.B
		return []int{s.p.B, P, s.p.T, c}, []int{0, 2, 1, 3}
	}
}

// forward runs layer i and frees what no later step reads.
func (s *SDNet) forward(i int) error {
	if done, err := s.forwardChunked(i); done {
		return err
	}
	if done, err := s.forwardHalfFused(i); done {
		return err
	}
	if done, err := s.forwardGNSiLU(i); done {
		return err
	}
	l := s.p.net.Layers[i]
	d, k := s.dev, s.k
	in := make([]*cuda.Tensor, len(l.In))
	for j, v := range l.In {
		if in[j] = s.vals[v]; in[j] == nil {
			return fmt.Errorf("input value %d was freed or never computed", v)
		}
	}
	y, err := d.NewTensor(s.p.shapes[l.Out]...)
	if err != nil {
		return err
	}
	s.vals[l.Out] = y
	x := in[0]
	switch l.Kind {
	case model.TimestepEmbed:
		err = d.TimestepEmbedding(y, x, s.p.net.Values[l.Out].Channels)
	case model.SinusoidalEmbed:
		// from the host copy of the timesteps (inputs only): nn's own arithmetic
		var ts []float32
		if ts, err = x.ToHost(); err == nil {
			e := make([]float32, y.Len())
			nn.SinusoidalEmbedding(e, ts, nn.SinusoidalShape{N: len(ts), Dim: s.p.net.Values[l.Out].Channels, FlipSinToCos: l.FlipSinToCos, FreqShift: l.FreqShift})
			err = y.Upload(e)
		}
	case model.Linear:
		rows, c := s.rowsOf(l.In[0])
		err = s.linearForward(l, y, x, nn.LinearShape{N: rows, In: c, Out: s.p.net.Values[l.Out].Channels})
	case model.SiLU:
		err = d.SiLUForward(y, x)
	case model.GELU:
		err = k.act(y.Ptr(), x.Ptr(), int64(x.Len()), actGELU)
	case model.QuickGELU:
		err = k.act(y.Ptr(), x.Ptr(), int64(x.Len()), actQuickGELU)
	case model.GEGLU:
		err = s.gegluForward(l, y, x)
	case model.Conv2D:
		err = s.conv2DForward(l, y, x, s.convShape(l))
	case model.Conv2DPadEnd:
		err = s.padConvForward(l, y, x)
	case model.TemporalConv:
		err = s.tconvForwardLayer(l, y, x)
	case model.GroupNorm:
		err = s.groupNormForward(l, y, x)
	case model.LayerNorm:
		err = s.layerNormForward(i, l, y, x)
	case model.SeqAttention:
		if s.useFlash(l) {
			err = s.flashForward(i, l, y, in[0], in[1], in[2])
		} else if s.halfAttention(l) {
			err = s.seqAttentionForwardBF16(l, y, in[0], in[1], in[2])
		} else {
			err = s.seqAttentionForward(l, y, in[0], in[1], in[2])
		}
	case model.TokenEmbed:
		err = s.tokenEmbedForward(l, y, x)
	case model.ToTokens, model.ToFrames, model.ToTime, model.FromTime:
		shape, perm := s.swapPerm(l, false)
		err = d.Permute(y, x, shape, perm)
	case model.Upsample:
		n, c, h, w := s.frame(l.In[0])
		err = d.Upsample2xForward(y, x, nn.ResampleShape{N: n, C: c, H: h, W: w})
	case model.Add:
		err = d.Add(y, x, in[1])
	case model.AddChannel:
		n, c, h, w := s.frame(l.In[0])
		err = d.AddChannelForward(y, x, in[1], nn.ChannelShape{N: n, C: c, P: h * w})
	case model.Concat:
		n, ca, h, w := s.frame(l.In[0])
		err = d.ConcatForward(y, x, in[1], nn.ConcatShape{N: n, CA: ca, CB: s.p.shapes[l.In[1]][1], P: h * w})
	default:
		err = fmt.Errorf("unknown layer kind %q", l.Kind)
	}
	if err != nil {
		return err
	}
	for _, v := range s.freeList(i, true) {
		if s.mayFree(v) {
			s.freeValue(v)
		}
	}
	return s.packDone(i)
}

func (s *SDNet) freeValue(v int) {
	if t := s.vals[v]; t != nil {
		t.Free()
		s.vals[v] = nil
	}
}

func (s *SDNet) padConvForward(l model.Layer, y, x *cuda.Tensor) error {
	n, c, h, w := s.frame(l.In[0])
	padded, err := s.dev.NewTensor(n, c, h+1, w+1)
	if err != nil {
		return err
	}
	defer padded.Free()
	if err := s.k.padEnd(padded.Ptr(), x.Ptr(), int64(n*c), h, w); err != nil {
		return err
	}
	return s.conv2DForward(l, y, padded, s.convShape(l))
}

func (s *SDNet) groupNormForward(l model.Layer, y, x *cuda.Tensor) error {
	gs := s.gnShape(l)
	if !l.Joint {
		return s.dev.GroupNormForward(y, x, s.param(l, 0), s.param(l, 1), nil, gs)
	}
	a, err := s.dev.NewTensor(x.Len())
	if err != nil {
		return err
	}
	defer a.Free()
	if err := s.dev.Permute(a, x, s.jointPerm(l.In[0], false), []int{0, 2, 1, 3}); err != nil {
		return err
	}
	b, err := s.dev.NewTensor(x.Len())
	if err != nil {
		return err
	}
	defer b.Free()
	if err := s.dev.GroupNormForward(b, a, s.param(l, 0), s.param(l, 1), nil, gs); err != nil {
		return err
	}
	return s.dev.Permute(y, b, s.jointPerm(l.In[0], true), []int{0, 2, 1, 3})
}

func (s *SDNet) layerNormForward(i int, l model.Layer, y, x *cuda.Tensor) error {
	rows, c := s.rowsOf(l.In[0])
	var mean, rstd uintptr
	if !s.eval && !s.noSave && s.p.backward[i] {
		st := &lnSaved{}
		var err error
		if st.mean, err = s.dev.NewTensor(rows); err != nil {
			return err
		}
		if st.rstd, err = s.dev.NewTensor(rows); err != nil {
			st.mean.Free()
			return err
		}
		s.ln[i] = st
		mean, rstd = st.mean.Ptr(), st.rstd.Ptr()
	}
	return s.k.layerNorm(y.Ptr(), mean, rstd, x.Ptr(), s.param(l, 0).Ptr(), s.param(l, 1).Ptr(), int64(rows), c, l.Eps)
}

func (s *SDNet) tokenEmbedForward(l model.Layer, y, x *cuda.Tensor) error {
	ids, err := x.ToHost()
	if err != nil {
		return err
	}
	tok := s.param(l, 0)
	out := s.p.shapes[l.Out]
	n, L, D := out[0], out[1], out[2]
	vocab := tok.Shape[0]
	if pos := s.param(l, 1).Shape[0]; pos < L {
		return fmt.Errorf("position table has %d rows, want at least %d", pos, L)
	}
	for j, f := range ids {
		id := int(f)
		if float32(id) != f || id < 0 || id >= vocab {
			return fmt.Errorf("token id %v at sequence %d position %d is not in [0, %d)", f, j/L, j%L, vocab)
		}
	}
	return s.k.tokenEmbed(y.Ptr(), x.Ptr(), tok.Ptr(), s.param(l, 1).Ptr(), int64(n), L, D)
}
