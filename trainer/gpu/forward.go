package gpu

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Op shapes of a layer, derived from the plan's value shapes.

func (s *Step) conv2dShape(l model.Layer) nn.Conv2DShape {
	in := s.p.shapes[l.In[0]]
	w := s.weights[l.Params[0]].Shape
	return nn.Conv2DShape{N: in[0], C: in[1], H: in[2], W: in[3], K: w[0], KH: w[2], KW: w[3], Stride: l.Stride, Pad: l.Pad}
}

func (s *Step) tconvShape(l model.Layer) nn.TemporalConvShape {
	in := s.p.shapes[l.In[0]]
	w := s.weights[l.Params[0]].Shape
	return nn.TemporalConvShape{B: s.p.B, T: s.p.T, C: in[1], K: w[0], P: in[2] * in[3]}
}

func (s *Step) gnShape(l model.Layer) nn.GroupNormShape {
	in := s.p.shapes[l.In[0]]
	return nn.GroupNormShape{N: in[0], C: in[1], P: in[2] * in[3], Groups: l.Groups, Eps: l.Eps}
}

func (s *Step) linearShape(l model.Layer) nn.LinearShape {
	in := s.p.shapes[l.In[0]]
	out := s.p.shapes[l.Out]
	return nn.LinearShape{N: in[0], In: in[1], Out: out[1]}
}

func (s *Step) chanShape(v int) nn.ChannelShape {
	sh := s.p.shapes[v]
	return nn.ChannelShape{N: sh[0], C: sh[1], P: sh[2] * sh[3]}
}

func (s *Step) concatShape(l model.Layer) nn.ConcatShape {
	a, b := s.p.shapes[l.In[0]], s.p.shapes[l.In[1]]
	return nn.ConcatShape{N: a[0], CA: a[1], CB: b[1], P: a[2] * a[3]}
}

func (s *Step) resampleShape(v int) nn.ResampleShape {
	sh := s.p.shapes[v]
	return nn.ResampleShape{N: sh[0], C: sh[1], H: sh[2], W: sh[3]}
}

// param returns layer l's i-th parameter tensor, or nil when it has none.
func (s *Step) param(l model.Layer, i int) *cuda.Tensor {
	if i >= len(l.Params) {
		return nil
	}
	return s.weights[l.Params[i]]
}

// forward runs layer i and frees what no later step reads.
func (s *Step) forward(i int) error {
	l := s.p.net.Layers[i]
	d := s.dev
	if s.p.fusedSiLU[i] {
		// computed by the fused group norm before it
		s.freeAfter(i)
		return nil
	}
	out := l.Out
	if s.p.fusedGN[i] {
		out = s.p.net.Layers[i+1].Out // the GN output is never materialised
	}
	y, err := d.NewTensor(s.p.shapes[out]...)
	if err != nil {
		return err
	}
	s.vals[out] = y
	in := make([]*cuda.Tensor, len(l.In))
	for j, v := range l.In {
		if in[j] = s.vals[v]; in[j] == nil {
			return fmt.Errorf("input value %d was freed or never computed", v)
		}
	}
	switch l.Kind {
	case model.TimestepEmbed:
		err = d.TimestepEmbedding(y, in[0], s.p.shapes[l.Out][1])
	case model.Linear:
		err = d.LinearForward(y, in[0], s.param(l, 0), s.param(l, 1), s.linearShape(l))
	case model.SiLU:
		err = d.SiLUForward(y, in[0])
	case model.Conv2D:
		err = d.Conv2DForward(y, in[0], s.param(l, 0), s.param(l, 1), s.conv2dShape(l))
	case model.TemporalConv:
		b := tptr(s.param(l, 1))
		if s.p.fusedTconv[i] {
			b = 0 // added with the embedding by the AddChannel that reads y
		}
		err = tconvForward(gpuTconv{s}, y.Ptr(), in[0].Ptr(), s.param(l, 0).Ptr(), b, s.tconvShape(l))
	case model.GroupNorm:
		gs := s.gnShape(l)
		var st *cuda.GroupNormStats
		if s.keeps(i) {
			if st, err = d.NewGroupNormStats(gs); err != nil {
				return err
			}
			s.gn[i] = st
		}
		if s.p.fusedGN[i] {
			if st == nil {
				if st, err = d.NewGroupNormStats(gs); err != nil {
					return err
				}
				defer st.Free()
			}
			err = d.GroupNormSiLUForward(y, in[0], s.param(l, 0), s.param(l, 1), st, gs)
		} else {
			err = d.GroupNormForward(y, in[0], s.param(l, 0), s.param(l, 1), st, gs)
		}
	case model.Attention:
		err = s.attentionForward(i, l, y, in[0])
	case model.Upsample:
		err = d.Upsample2xForward(y, in[0], s.resampleShape(l.In[0]))
	case model.Add:
		err = d.Add(y, in[0], in[1])
	case model.AddChannel:
		if c := s.p.addBiasOf[i]; c >= 0 {
			// in place on the temporal conv's output: + its bias + e
			y.Free()
			cs := s.chanShape(l.In[0])
			cl := s.p.net.Layers[c]
			err = gpuTconv{s}.biasEmb(in[0].Ptr(), s.param(cl, 1).Ptr(), in[1].Ptr(), int64(cs.N), cs.C, cs.P)
			s.vals[l.Out], s.vals[l.In[0]] = in[0], nil
		} else {
			err = d.AddChannelForward(y, in[0], in[1], s.chanShape(l.In[0]))
		}
	case model.Concat:
		err = d.ConcatForward(y, in[0], in[1], s.concatShape(l))
	default:
		err = fmt.Errorf("unknown layer kind %q", l.Kind)
	}
	if err != nil {
		return err
	}
	s.freeAfter(i)
	return nil
}

// freeAfter frees the values no later step reads once layer i's forward ran.
func (s *Step) freeAfter(i int) {
	free := s.p.freeAfterFwd[i]
	if s.eval {
		free = s.p.freeAfterEval[i]
	}
	for _, v := range free {
		s.freeValue(v)
	}
}

// keeps reports whether layer i's forward keeps state for its backward.
func (s *Step) keeps(i int) bool { return !s.eval && s.p.backward[i] }

func (s *Step) freeValue(v int) {
	if t := s.vals[v]; t != nil {
		t.Free()
		s.vals[v] = nil
	}
}
