package gpu

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// wgrad returns the gradient tensor of layer l's i-th parameter when it is
// trainable, else nil: a frozen weight never gets a gradient.
func (s *Step) wgrad(l model.Layer, i int) *cuda.Tensor {
	if i >= len(l.Params) || !s.p.trainable[l.Params[i]] {
		return nil
	}
	return s.wgrads[l.Params[i]]
}

// gradsDone queues the device-to-host copies of layer l's trainable
// gradients on the copy stream, after the work that computed them.
func (s *Step) gradsDone(l model.Layer) error {
	if !s.hostGrads {
		return nil
	}
	for _, name := range l.Params {
		i, ok := s.gradIndex[name]
		if !ok {
			continue
		}
		ev := s.gradReady[i]
		if err := ev.Record(nil); err != nil {
			return err
		}
		if err := s.dev.Wait(s.copyStream, ev); err != nil {
			return err
		}
		if s.copyStart != nil {
			if err := s.copyStart[i].Record(s.copyStream); err != nil {
				return err
			}
		}
		if err := s.wgrads[name].DownloadAsync(s.pinGrads[i], s.copyStream); err != nil {
			return fmt.Errorf("gradient of %s: %w", name, err)
		}
		if s.copyEnd != nil {
			if err := s.copyEnd[i].Record(s.copyStream); err != nil {
				return err
			}
		}
	}
	return nil
}

// backwardLayer runs layer i's backward: the gradients of the inputs a
// gradient flows to and of the layer's trainable parameters.
func (s *Step) backwardLayer(i int) error {
	l := s.p.net.Layers[i]
	d := s.dev
	if s.p.fusedSiLU[i] {
		// the fused group norm before it takes d loss / d silu output
		s.grads[l.In[0]] = s.grads[l.Out]
		s.grads[l.Out] = nil
		for _, v := range s.p.freeAfterBwd[i] {
			s.freeValue(v)
		}
		return nil
	}
	gy := s.grads[l.Out]
	if gy == nil {
		return fmt.Errorf("no gradient reached value %d", l.Out)
	}
	dy := gy.t
	need := func(j int) bool { return s.p.reqGrad[l.In[j]] }
	x := func(j int) *cuda.Tensor { return s.vals[l.In[j]] }
	// dataGrad computes input j's gradient with f writing into its buffer.
	dataGrad := func(j int, f func(dx *cuda.Tensor) error) error {
		if !need(j) {
			return nil
		}
		dx, done, err := s.gradOut(l.In[j])
		if err != nil {
			return err
		}
		if err := f(dx); err != nil {
			dx.Free()
			return err
		}
		return done()
	}
	var err error
	switch l.Kind {
	case model.Linear:
		ls := s.linearShape(l)
		err = dataGrad(0, func(dx *cuda.Tensor) error { return d.LinearBackwardData(dx, dy, s.param(l, 0), ls) })
		if dw, db := s.wgrad(l, 0), s.wgrad(l, 1); err == nil && (dw != nil || db != nil) {
			err = d.LinearBackwardParams(dw, db, dy, x(0), ls)
		}
	case model.SiLU:
		err = dataGrad(0, func(dx *cuda.Tensor) error { return d.SiLUBackward(dx, dy, x(0)) })
	case model.Conv2D:
		cs := s.conv2dShape(l)
		err = dataGrad(0, func(dx *cuda.Tensor) error { return d.Conv2DBackwardData(dx, dy, s.param(l, 0), cs) })
		if dw, db := s.wgrad(l, 0), s.wgrad(l, 1); err == nil && dw != nil {
			err = d.Conv2DBackwardFilter(dw, db, dy, x(0), cs)
		} else if err == nil && db != nil {
			err = d.SumChannels(db, dy, s.chanShape(l.Out))
		}
	case model.TemporalConv:
		ts := s.tconvShape(l)
		err = dataGrad(0, func(dx *cuda.Tensor) error {
			return tconvBackwardData(gpuTconv{s}, dx.Ptr(), dy.Ptr(), s.param(l, 0).Ptr(), ts)
		})
		if dw, db := s.wgrad(l, 0), s.wgrad(l, 1); err == nil && dw != nil {
			if err = tconvBackwardFilter(gpuTconv{s}, dw.Ptr(), dy.Ptr(), x(0).Ptr(), ts); err == nil && db != nil {
				err = d.SumChannels(db, dy, s.chanShape(l.Out))
			}
		} else if err == nil && db != nil {
			err = d.SumChannels(db, dy, s.chanShape(l.Out))
		}
	case model.GroupNorm:
		// one fused pass for dx, dgamma and dbeta (nil ones skipped)
		gs := s.gnShape(l)
		st := s.gn[i]
		dg, db := s.wgrad(l, 0), s.wgrad(l, 1)
		if s.p.fusedGN[i] {
			gamma, beta := s.param(l, 0), s.param(l, 1)
			err = dataGrad(0, func(dx *cuda.Tensor) error {
				return d.GroupNormSiLUBackwardData(dx, dy, x(0), gamma, beta, st, gs)
			})
			if err == nil && (dg != nil || db != nil) {
				err = d.GroupNormSiLUBackwardParams(dg, db, dy, x(0), gamma, beta, st, gs)
			}
		} else if need(0) {
			err = dataGrad(0, func(dx *cuda.Tensor) error {
				return d.GroupNormBackward(dx, dg, db, dy, x(0), s.param(l, 0), st, gs)
			})
		} else if dg != nil || db != nil {
			err = d.GroupNormBackward(nil, dg, db, dy, x(0), s.param(l, 0), st, gs)
		}
		st.Free()
		delete(s.gn, i)
	case model.Attention:
		err = dataGrad(0, func(dx *cuda.Tensor) error { return s.attentionBackward(i, l, dx, dy, x(0)) })
		if a := s.attn[i]; a != nil {
			a.free()
			delete(s.attn, i)
		}
	case model.Upsample:
		err = dataGrad(0, func(dx *cuda.Tensor) error { return d.Upsample2xBackward(dx, dy, s.resampleShape(l.In[0])) })
	case model.Add:
		for j := range l.In {
			if err == nil && need(j) {
				err = s.share(l.In[j], gy)
			}
		}
	case model.AddChannel:
		if need(0) {
			err = s.share(l.In[0], gy)
		}
		if err == nil {
			err = dataGrad(1, func(de *cuda.Tensor) error { return d.AddChannelBackwardBias(de, dy, s.chanShape(l.In[0])) })
		}
	case model.Concat:
		cs := s.concatShape(l)
		err = dataGrad(0, func(da *cuda.Tensor) error { return d.ConcatBackward(da, nil, dy, cs) })
		if err == nil {
			err = dataGrad(1, func(db *cuda.Tensor) error { return d.ConcatBackward(nil, db, dy, cs) })
		}
	case model.TimestepEmbed:
		// timesteps are data: nothing to propagate
	default:
		err = fmt.Errorf("unknown layer kind %q", l.Kind)
	}
	if err != nil {
		return err
	}
	if err := s.gradsDone(l); err != nil {
		return err
	}
	gy.release()
	s.grads[l.Out] = nil
	for _, v := range s.p.freeAfterBwd[i] {
		s.freeValue(v)
	}
	return nil
}
