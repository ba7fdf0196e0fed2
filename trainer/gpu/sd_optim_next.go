package gpu

import (
	"runtime"
	"sync"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// The update after the norm, overlapped with the next step's forward
// (SDHostAdamW.SetOverlapForward): TrainStep returns once the norm is
// known; a host goroutine completes the buckets, the first layers' first,
// queueing each one's upload and recording an event after it on the
// upload stream, and the next forward pass waits, layer by layer, for the
// buckets its layer reads (on the host until the event is recorded, then
// on the device for the upload). Every other reader of the weights (Wait,
// called by Forward, UploadTrainable, the next backward pass and Free)
// waits for all of them. The arithmetic is Complete's: the same bits.

// nextForward is a step's update still being completed.
type nextForward struct {
	ready  []chan struct{} // per bucket: closed once its upload is queued (or on an error)
	waited []bool          // per bucket: the compute stream waits for it
	failed chan struct{}   // closed on an error, before the ready channels left
	done   chan error
	took   time.Duration // the completion's time, set before done is sent

	mu       sync.Mutex
	finished bool   // the buckets are complete (or failed)
	ok       bool   // ... without an error
	after    func() // AfterUpdate's, run by the completion once finished
}

// SetOverlapForward makes the update after the norm (a clipped step's
// redo, a deferred step's update) overlap the next step's forward pass
// instead of ending TrainStep; Wait then gives the finished weights.
func (h *SDHostAdamW) SetOverlapForward(on bool) error {
	if err := h.Wait(); err != nil {
		return err
	}
	if on && h.evUp == nil {
		for range h.buckets {
			e, err := h.s.dev.NewEvent()
			if err != nil {
				return err
			}
			h.evUp = append(h.evUp, e)
		}
		h.layerBuckets = map[int][]int{}
		bucketOf := make([]int, len(h.s.trainable))
		for b, js := range h.buckets {
			for _, j := range js {
				bucketOf[j] = b
			}
		}
		index := map[string]int{}
		for j, q := range h.s.trainable {
			index[q.Name] = j
		}
		for i, l := range h.s.p.net.Layers {
			for _, n := range l.Params {
				if j, ok := index[n]; ok {
					h.layerBuckets[i] = append(h.layerBuckets[i], bucketOf[j])
				}
			}
		}
	}
	h.overlapFwd = on
	return nil
}

// completeLater starts ov's completion in the background (after a
// successful Finish).
func (h *SDHostAdamW) completeLater(ov *optim.Overlapped) {
	nf := &nextForward{ready: make([]chan struct{}, len(h.buckets)), waited: make([]bool, len(h.buckets)), failed: make(chan struct{}), done: make(chan error, 1)}
	for b := range nf.ready {
		nf.ready[b] = make(chan struct{})
	}
	h.next = nf
	// a core left to the launches of the forward pass it runs behind
	ov.SetWorkers(max(1, runtime.GOMAXPROCS(0)-1))
	go func() {
		t0 := time.Now()
		var err error
		b := len(h.buckets) - 1
		for ; b >= 0 && err == nil; b-- {
			var changed bool
			if changed, err = ov.Complete(h.buckets[b], h.hostG, h.hostW); err == nil && changed {
				err = h.uploadStaged(h.buckets[b])
			}
			if err == nil {
				err = h.evUp[b].Record(h.up)
			}
			if err == nil {
				close(nf.ready[b])
			}
		}
		nf.mu.Lock()
		nf.finished, nf.ok = true, err == nil
		after := nf.after
		nf.mu.Unlock()
		if after != nil && err == nil {
			after()
		}
		if err != nil {
			// the norm is known: the step is carried through and every
			// weight uploaded again
			ov.Abort(h.hostG)
			h.reuploadAll()
			close(nf.failed)
			for b++; b >= 0; b-- {
				close(nf.ready[b])
			}
		}
		nf.took = time.Since(t0)
		nf.done <- err
	}()
}

// AfterUpdate runs fn once the last step's update is complete on the
// host (its weights final in the host values): at once when it is, else
// in the background right after it (with SetOverlapForward), before Wait
// or anything waiting for that update returns. It is how a per-step
// reader of the weights (an EMA) keeps the overlap with the next forward.
// After a failed update fn does not run: the step's error comes back
// from the next call that waits.
func (h *SDHostAdamW) AfterUpdate(fn func()) {
	nf := h.next
	if nf == nil {
		fn()
		return
	}
	nf.mu.Lock()
	if !nf.finished {
		nf.after = fn
		nf.mu.Unlock()
		return
	}
	ok := nf.ok
	nf.mu.Unlock()
	if ok {
		fn()
	}
}

// weightsFor makes the compute stream wait for the weights layer i reads
// of a step still being completed.
func (h *SDHostAdamW) weightsFor(i int) error {
	nf := h.next
	if nf == nil {
		return nil
	}
	for _, b := range h.layerBuckets[i] {
		if nf.waited[b] {
			continue
		}
		t0 := time.Now()
		<-nf.ready[b]
		h.fwdWait += time.Since(t0)
		select {
		case <-nf.failed:
			return h.Wait()
		default:
		}
		if err := h.s.dev.Wait(nil, h.evUp[b]); err != nil {
			return err
		}
		nf.waited[b] = true
	}
	return nil
}

// Wait returns once the last step's update is complete: the host weights
// and moments final, the device weights uploaded. With SetOverlapForward
// off it returns at once.
func (h *SDHostAdamW) Wait() error {
	nf := h.next
	if nf == nil {
		return nil
	}
	h.next = nil
	err := <-nf.done
	if serr := h.up.Sync(); err == nil {
		err = serr
	}
	return err
}

// freeOverlap releases SetOverlapForward's events.
func (h *SDHostAdamW) freeOverlap() {
	for _, e := range h.evUp {
		e.Destroy()
	}
	h.evUp = nil
}
