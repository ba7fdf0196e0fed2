package gpu

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// sdReduce is an SDNet's part in data-parallel training (trainer/dist's
// DeviceReducer behind GradReducer): after the backward pass of the last
// layer that adds to a trainable gradient (backward runs in reverse layer
// order, so the lowest-numbered layer using it), that gradient is handed
// to the reducer, which all-reduces buckets of them on its communication
// stream while the backward pass goes on; after the pass the device's
// stream waits for the last reduction, so whatever reads the gradients
// next (Grads, an optimizer in the step) sees the averaged ones.
//
// The hooks a training step calls: gradsReady(i) after layer i's backward
// (cheap when no reducer is set) and reduceWait() once after the backward
// pass, before the gradients are read.
type sdReduce struct {
	r GradReducer
	// done lists, per layer, the trainable gradients (index in Trainable)
	// that are final once that layer's backward has been queued.
	done [][]int
	// ev marks the compute stream's position; the reducer's stream waits
	// on it at once, so one event serves every gradient.
	ev *cuda.Event
}

// SetGradReducer makes every later TrainStep hand its trainable gradients
// to r (nil: none).
func (s *SDNet) SetGradReducer(r GradReducer) error {
	if r == nil {
		if s.red != nil && s.red.ev != nil {
			s.red.ev.Destroy()
		}
		s.red = nil
		return nil
	}
	index := map[string]int{}
	for i, q := range s.trainable {
		index[q.Name] = i
	}
	last := make([]int, len(s.trainable))
	for i := range last {
		last[i] = -1
	}
	net := s.p.net
	for li := len(net.Layers) - 1; li >= 0; li-- {
		for _, name := range net.Layers[li].Params {
			if i, ok := index[name]; ok {
				last[i] = li
			}
		}
	}
	done := make([][]int, len(net.Layers))
	for i, li := range last {
		if li < 0 {
			return fmt.Errorf("gpu: trainable %s is used by no layer", s.trainable[i].Name)
		}
		if !s.p.backward[li] {
			return fmt.Errorf("gpu: trainable %s: layer %d has no backward pass", s.trainable[i].Name, li)
		}
		done[li] = append(done[li], i)
	}
	ev, err := s.dev.NewEvent()
	if err != nil {
		return err
	}
	if s.red != nil && s.red.ev != nil {
		s.red.ev.Destroy()
	}
	s.red = &sdReduce{r: r, done: done, ev: ev}
	return nil
}

// gradsReady hands the gradients layer i's backward completed to the
// reducer, if one is set.
func (s *SDNet) gradsReady(i int) error {
	if s.red == nil || len(s.red.done[i]) == 0 {
		return nil
	}
	if err := s.red.ev.Record(nil); err != nil {
		return err
	}
	for _, g := range s.red.done[i] {
		q := s.trainable[g]
		if err := s.red.r.Ready(g, s.wgrads[q.Name], s.red.ev); err != nil {
			return fmt.Errorf("gradient of %s: %w", q.Name, err)
		}
	}
	return nil
}

// reduceWait, after the backward pass, orders the device's stream after
// the last reduction.
func (s *SDNet) reduceWait() error {
	if s.red == nil {
		return nil
	}
	ev, err := s.red.r.Flush()
	if err != nil {
		return fmt.Errorf("gpu: gradient reduction: %w", err)
	}
	return s.dev.Wait(nil, ev)
}
