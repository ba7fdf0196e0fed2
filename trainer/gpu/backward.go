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

// gradsDone hands layer l's trainable gradients to the reducer, if one is
// set, or else queues their device-to-host copies on the copy stream,
// after the work that computed them.
func (s *Step) gradsDone(l model.Layer) error {
	if !s.hostGrads && s.reducer == nil {
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
		if s.reducer != nil {
			if err := s.reducer.Ready(i, s.wgrads[name], ev); err != nil {
				return fmt.Errorf("gradient of %s: %w", name, err)
			}
			continue
		}
		if err := s.downloadGrad(i, ev); err != nil {
			return err
		}
	}
	return nil
}

// downloadGrad queues the copy of gradient i to its pinned buffer on the
// copy stream, after ev.
func (s *Step) downloadGrad(i int, ev *cuda.Event) error {
	if err := s.dev.Wait(s.copyStream, ev); err != nil {
		return err
	}
	if s.copyStart != nil {
		if err := s.copyStart[i].Record(s.copyStream); err != nil {
			return err
		}
	}
	name := s.trainable[i].Name
	if err := s.wgrads[name].DownloadAsync(s.pinGrads[i], s.copyStream); err != nil {
		return fmt.Errorf("gradient of %s: %w", name, err)
	}
	if s.copyEnd != nil {
		if err := s.copyEnd[i].Record(s.copyStream); err != nil {
			return err
		}
	}
	return nil
}

// GradReducer is handed each trainable gradient (index in Trainable) as
// soon as the backward pass has queued the work computing it, ready once
// computed has happened: data-parallel training all-reduces buckets of
// them on a stream of its own while the backward pass goes on. Flush, after
// the backward pass, returns an event after the last reduction; the
// device's stream waits for it before the gradients are copied to the host
// or read by the optimizer on the device.
type GradReducer interface {
	Ready(i int, grad *cuda.Tensor, computed *cuda.Event) error
	Flush() (*cuda.Event, error)
}

// SetGradReducer makes every later Run hand its gradients to r (nil: none).
func (s *Step) SetGradReducer(r GradReducer) { s.reducer = r }

// reduced waits for the reducer's reductions and then copies the reduced
// gradients to the host (when they go there).
func (s *Step) reduced() error {
	ev, err := s.reducer.Flush()
	if err != nil {
		return err
	}
	if err := s.dev.Wait(nil, ev); err != nil {
		return err
	}
	if !s.hostGrads {
		return nil
	}
	for i, ready := range s.gradReady {
		if err := ready.Record(nil); err != nil {
			return err
		}
		if err := s.downloadGrad(i, ready); err != nil {
			return err
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
