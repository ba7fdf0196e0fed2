package gpu

import (
	"fmt"
	"slices"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// wgrad is the gradient tensor of layer l's i-th parameter when it is
// trainable, else nil.
func (s *SDNet) wgrad(l model.Layer, i int) *cuda.Tensor {
	if i >= len(l.Params) {
		return nil
	}
	return s.wgrads[l.Params[i]]
}

// accumulate adds g to value v's gradient; owned g is taken over (or freed),
// otherwise copied.
func (s *SDNet) accumulate(v int, g *cuda.Tensor, owned bool) error {
	if cur := s.grads[v]; cur != nil {
		err := s.k.accumulate(cur.Ptr(), g.Ptr(), int64(g.Len()))
		if owned {
			g.Free()
		}
		return err
	}
	if owned {
		s.grads[v] = g
		return nil
	}
	c, err := s.dev.NewTensor(s.p.shapes[v]...)
	if err != nil {
		return err
	}
	s.grads[v] = c
	return s.k.copy(c.Ptr(), g.Ptr(), int64(g.Len()))
}

// backwardLayer runs layer i's backward: the gradients of the inputs a
// gradient flows to and of the layer's trainable parameters.
func (s *SDNet) backwardLayer(i int) error {
	l := s.p.net.Layers[i]
	d, k := s.dev, s.k
	dy := s.grads[l.Out]
	if dy == nil {
		return fmt.Errorf("no gradient reached value %d", l.Out)
	}
	s.grads[l.Out] = nil
	need := func(j int) bool { return s.p.reqGrad[l.In[j]] }
	x := func(j int) *cuda.Tensor { return s.vals[l.In[j]] }
	// dataGrad computes input j's gradient with f writing a fresh buffer.
	dataGrad := func(j int, f func(dx *cuda.Tensor) error) error {
		if !need(j) {
			return nil
		}
		dx, err := d.NewTensor(s.p.shapes[l.In[j]]...)
		if err != nil {
			return err
		}
		if err := f(dx); err != nil {
			dx.Free()
			return err
		}
		return s.accumulate(l.In[j], dx, true)
	}
	passed := false // dy was handed on to an input
	var err error
	switch l.Kind {
	case model.Linear:
		rows, c := s.rowsOf(l.In[0])
		ls := nn.LinearShape{N: rows, In: c, Out: s.p.net.Values[l.Out].Channels}
		if s.t16(l) {
			err = s.linearBackwardT16(l, dy, x(0), ls, dataGrad)
			break
		}
		if s.linearTrainableFast(l) {
			err = s.linearBackwardTrainable(l, dy, x(0), ls)
			break
		}
		err = dataGrad(0, func(dx *cuda.Tensor) error { return s.linearBackwardData(l, dx, dy, ls) })
		if dw, db := s.wgrad(l, 0), s.wgrad(l, 1); err == nil && (dw != nil || db != nil) {
			err = d.LinearBackwardParams(dw, db, dy, x(0), ls)
		}
	case model.SiLU:
		if s.gnSiLUFused(i - 1) {
			passed = s.backwardSiLUFused(i, dy)
			break
		}
		err = dataGrad(0, func(dx *cuda.Tensor) error { return d.SiLUBackward(dx, dy, x(0)) })
	case model.GELU, model.QuickGELU:
		kind := actGELU
		if l.Kind == model.QuickGELU {
			kind = actQuickGELU
		}
		err = dataGrad(0, func(dx *cuda.Tensor) error {
			return k.actBackward(dx.Ptr(), dy.Ptr(), x(0).Ptr(), int64(dx.Len()), kind)
		})
	case model.GEGLU:
		if done, e := s.gegluBackwardSaved(l, dy, dataGrad); done { // from its 16-bit copy (sd_saved.go)
			err = e
			break
		}
		rows, _ := s.rowsOf(l.Out)
		f := s.p.net.Values[l.Out].Channels
		if dx := s.takeInput(i, 0); dx != nil {
			// in place: the input's last reader turns it into its gradient
			err = k.gegluBackward(dx.Ptr(), dy.Ptr(), dx.Ptr(), int64(rows), f)
			s.grads[l.In[0]] = dx
			break
		}
		err = dataGrad(0, func(dx *cuda.Tensor) error {
			return k.gegluBackward(dx.Ptr(), dy.Ptr(), x(0).Ptr(), int64(rows), f)
		})
	case model.Conv2D:
		cs := s.convShape(l)
		err = dataGrad(0, func(dx *cuda.Tensor) error { return s.conv2DBackwardData(l, dx, dy, cs) })
		if dw, db := s.wgrad(l, 0), s.wgrad(l, 1); err == nil && dw != nil {
			err = d.Conv2DBackwardFilter(dw, db, dy, x(0), cs)
		} else if err == nil && db != nil {
			n, c, h, w := s.frame(l.Out)
			err = d.SumChannels(db, dy, nn.ChannelShape{N: n, C: c, P: h * w})
		}
	case model.Conv2DPadEnd:
		if s.wgrad(l, 0) != nil || s.wgrad(l, 1) != nil {
			return fmt.Errorf("training a padded convolution's weights is not supported")
		}
		err = dataGrad(0, func(dx *cuda.Tensor) error {
			n, c, h, w := s.frame(l.In[0])
			padded, err := d.NewTensor(n, c, h+1, w+1)
			if err != nil {
				return err
			}
			defer padded.Free()
			if err := s.conv2DBackwardData(l, padded, dy, s.convShape(l)); err != nil {
				return err
			}
			return k.cropEnd(dx.Ptr(), padded.Ptr(), int64(n*c), h, w)
		})
	case model.TemporalConv:
		err = s.tconvBackwardLayer(l, dy, x(0), dataGrad)
	case model.GroupNorm:
		if s.gnSiLUFused(i) {
			err = s.gnSiLUBackward(i, dy, x(0), need(0))
			break
		}
		err = s.groupNormBackward(l, dy, x(0), need(0))
	case model.LayerNorm:
		err = s.layerNormBackward(i, l, dy, x(0), need(0))
	case model.SeqAttention:
		var dq, dk, dv *cuda.Tensor
		for j, t := range []**cuda.Tensor{&dq, &dk, &dv} {
			if need(j) {
				if *t, err = d.NewTensor(s.p.shapes[l.In[j]]...); err != nil {
					break
				}
			}
		}
		if err == nil {
			if s.useFlash(l) {
				err = s.flashBackward(i, l, dq, dk, dv, dy, x(0), x(1), x(2))
			} else if s.halfAttention(l) {
				err = s.seqAttentionBackwardBF16(l, dq, dk, dv, dy, x(0), x(1), x(2))
			} else {
				err = s.seqAttentionBackward(l, dq, dk, dv, dy, x(0), x(1), x(2))
			}
		}
		for j, t := range []*cuda.Tensor{dq, dk, dv} {
			if t == nil {
				continue
			}
			if err == nil {
				err = s.accumulate(l.In[j], t, true)
			} else {
				t.Free()
			}
		}
	case model.ToTokens, model.ToFrames, model.ToTime, model.FromTime:
		err = dataGrad(0, func(dx *cuda.Tensor) error {
			shape, perm := s.swapPerm(l, true)
			return d.Permute(dx, dy, shape, perm)
		})
	case model.Upsample:
		n, c, h, w := s.frame(l.In[0])
		err = dataGrad(0, func(dx *cuda.Tensor) error {
			return d.Upsample2xBackward(dx, dy, nn.ResampleShape{N: n, C: c, H: h, W: w})
		})
	case model.Add:
		last := -1
		for j := range l.In {
			if need(j) {
				last = j
			}
		}
		for j := range l.In {
			if err == nil && need(j) {
				err = s.accumulate(l.In[j], dy, j == last)
				passed = passed || j == last
			}
		}
	case model.AddChannel:
		n, c, h, w := s.frame(l.In[0])
		err = dataGrad(1, func(de *cuda.Tensor) error {
			return d.AddChannelBackwardBias(de, dy, nn.ChannelShape{N: n, C: c, P: h * w})
		})
		if err == nil && need(0) {
			err, passed = s.accumulate(l.In[0], dy, true), true
		}
	case model.Concat:
		n, ca, h, w := s.frame(l.In[0])
		cs := nn.ConcatShape{N: n, CA: ca, CB: s.p.shapes[l.In[1]][1], P: h * w}
		err = dataGrad(0, func(da *cuda.Tensor) error { return d.ConcatBackward(da, nil, dy, cs) })
		if err == nil {
			err = dataGrad(1, func(db *cuda.Tensor) error { return d.ConcatBackward(nil, db, dy, cs) })
		}
	case model.TimestepEmbed, model.SinusoidalEmbed, model.TokenEmbed:
		// their inputs are data
	default:
		err = fmt.Errorf("unknown layer kind %q", l.Kind)
	}
	if !passed {
		dy.Free()
	}
	if err != nil {
		return err
	}
	for _, v := range s.freeList(i, false) {
		if s.mayFree(v) {
			s.freeValue(v)
		}
	}
	return nil
}

// takeInput hands layer i's input j over to become its gradient (an
// elementwise backward that may write in place): when a gradient flows to
// it, none has arrived yet and layer i's backward is its last reader
// (nil otherwise).
func (s *SDNet) takeInput(i, j int) *cuda.Tensor {
	v := s.p.net.Layers[i].In[j]
	if !s.p.reqGrad[v] || s.grads[v] != nil || s.vals[v] == nil || !s.mayFree(v) || !slices.Contains(s.freeList(i, false), v) {
		return nil
	}
	t := s.vals[v]
	s.vals[v] = nil
	return t
}

func (s *SDNet) groupNormBackward(l model.Layer, dy, x *cuda.Tensor, needX bool) error {
	d := s.dev
	gs := s.gnShape(l)
	dg, db := s.wgrad(l, 0), s.wgrad(l, 1)
	if !needX && dg == nil && db == nil {
		return nil
	}
	if !l.Joint {
		if dg != nil || db != nil {
			if err := d.GroupNormBackwardParams(dg, db, dy, x, s.param(l, 0), nil, gs); err != nil {
				return err
			}
		}
		if !needX {
			return nil
		}
		return s.gnBackwardDataInto(l.In[0], dy, x, s.param(l, 0), nil, nil, gs, false)
	}
	fwd, back := s.jointPerm(l.In[0], false), s.jointPerm(l.In[0], true)
	perm := []int{0, 2, 1, 3}
	tmp := make([]*cuda.Tensor, 3)
	for j := range tmp {
		t, err := d.NewTensor(x.Len())
		if err != nil {
			for _, u := range tmp {
				u.Free()
			}
			return err
		}
		tmp[j] = t
	}
	xa, dya, dxa := tmp[0], tmp[1], tmp[2]
	defer xa.Free()
	defer dya.Free()
	if err := d.Permute(xa, x, fwd, perm); err != nil {
		dxa.Free()
		return err
	}
	if err := d.Permute(dya, dy, fwd, perm); err != nil {
		dxa.Free()
		return err
	}
	var dxArg *cuda.Tensor
	if needX {
		dxArg = dxa
	}
	if err := d.GroupNormBackward(dxArg, dg, db, dya, xa, s.param(l, 0), nil, gs); err != nil {
		dxa.Free()
		return err
	}
	if !needX {
		dxa.Free()
		return nil
	}
	dx, err := d.NewTensor(s.p.shapes[l.In[0]]...)
	if err != nil {
		dxa.Free()
		return err
	}
	err = d.Permute(dx, dxa, back, perm)
	dxa.Free()
	if err != nil {
		dx.Free()
		return err
	}
	return s.accumulate(l.In[0], dx, true)
}

func (s *SDNet) layerNormBackward(i int, l model.Layer, dy, x *cuda.Tensor, needX bool) error {
	st := s.ln[i]
	if st == nil {
		return fmt.Errorf("layer norm statistics were not kept")
	}
	defer func() { st.free(); delete(s.ln, i) }()
	rows, c := s.rowsOf(l.In[0])
	gamma := s.param(l, 0)
	if dg, db := s.wgrad(l, 0), s.wgrad(l, 1); dg != nil || db != nil {
		chunks, _ := lnChunks(int64(rows))
		part, err := s.dev.NewTensor(2 * chunks * c)
		if err != nil {
			return err
		}
		err = s.k.layerNormBackwardParams(tptr(dg), tptr(db), part.Ptr(), dy.Ptr(), x.Ptr(), st.mean.Ptr(), st.rstd.Ptr(), int64(rows), c)
		part.Free()
		if err != nil {
			return err
		}
	}
	if !needX {
		return nil
	}
	dx, err := s.dev.NewTensor(s.p.shapes[l.In[0]]...)
	if err != nil {
		return err
	}
	if err := s.k.layerNormBackwardData(dx.Ptr(), dy.Ptr(), x.Ptr(), gamma.Ptr(), st.mean.Ptr(), st.rstd.Ptr(), int64(rows), c); err != nil {
		dx.Free()
		return err
	}
	return s.accumulate(l.In[0], dx, true)
}
