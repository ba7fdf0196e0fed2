package gpu

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// NewSDDeviceAdamW is DeviceAdamW over the SD executor's trainable
// parameters (optimizer_state: device): moments and update on the card,
// run by DeviceAdamW.Step after each TrainStep.
func NewSDDeviceAdamW(s *SDNet, cfg optim.Config, noDecay func(name string) bool) (*DeviceAdamW, error) {
	if s.host != nil {
		return nil, errors.New("gpu: the SD executor already has a host optimizer")
	}
	return newDeviceAdamW(adamTarget{dev: s.dev, k: s.k, trainable: s.trainable, weights: s.weights, wgrads: s.wgrads,
		skipped: func() bool { _, sk := s.LossScale(); return sk }}, cfg, noDecay)
}

// sdBucketFloats is the least gradient a bucket of SDHostAdamW holds
// (16 MiB): large copies, few hand-overs.
const sdBucketFloats = 1 << 22

// SDHostAdamW is trainer/optim's AdamW on the host, overlapped with the SD
// executor's backward pass (optimizer_state: host): no optimizer byte on
// the device. The trainable parameters are grouped into buckets in the
// order their gradients become final in backward (the last layer using
// them has run). As soon as a bucket is final its gradients are copied to
// pinned host memory on a second stream and a host goroutine hands it to
// optim.Overlapped on all cores, while the backward pass goes on: a step
// likely unclipped is speculated (the unclipped update applied at once,
// the old values saved, the new weights written to pinned staging memory
// in the same pass and their upload queued on a third stream); one known
// or likely clipped (the previous step was) only sums the gradient's
// squares. At the end of TrainStep the global norm is known: each bucket
// not yet final (redone from the saved values when clipped, or updated
// once when deferred) is computed and staged in one pass, the first
// layers' first, each upload overlapping the next bucket's update; a
// non-finite gradient restores the speculated ones. TrainStep returns
// with the device weights updated; Stats reports the update.
type SDHostAdamW struct {
	s            *SDNet
	opt          *optim.AdamW
	down, up     *cuda.Stream
	pinG, pinW   []*cuda.Pinned // per trainable parameter
	hostG, hostW [][]float32    // pinG and pinW as slices
	buckets      [][]int        // trainable indices
	readyAt      map[int]int    // layer (len(layers): before backward) -> bucket final after it
	evGrad       []*cuda.Event  // per bucket: its gradients are final (compute stream)
	evCopied     []*cuda.Event  // per bucket: copied to the host (down stream)

	// deferred: a data-parallel step's gradients are final only after the
	// ranks' all-reduce (sd_reduce.go): its buckets go over after the
	// backward.
	deferred bool
	// unscaled: a single-GPU fp16 step; each bucket's gradients are
	// divided by the loss scale and checked for overflow on the device
	// just before they go over (send), so its update overlaps the
	// backward pass as bf16's does; an overflow (known at the end) puts the
	// speculated buckets' weights and moments back (finish).
	unscaled bool
	ov       *optim.Overlapped
	work     chan int
	done     chan error
	stats    optim.Stats
	stepErr  error
	timing   HostStepTiming

	// SetOverlapForward's (sd_optim_next.go)
	overlapFwd   bool
	evUp         []*cuda.Event // per bucket: its upload is done (up stream)
	layerBuckets map[int][]int // layer -> the buckets of the trainable weights it reads
	next         *nextForward  // the last step's update, still being completed
	fwdWait      time.Duration // this step's forward's waits for it
}

// HostStepTiming is where the host side of the last TrainStep's update
// went, measured on the host's clock: the benchmark's breakdown of the
// time a host step adds to the GPU's.
type HostStepTiming struct {
	// Update is the worker's unclipped updates (during the backward
	// pass but for the last), summed.
	Update time.Duration
	// Tail is the wait after the backward pass for the worker's last
	// unclipped updates and their staging.
	Tail time.Duration
	// WaitUploads is the wait for the speculative uploads before a
	// clipped step's redo reuses their staging.
	WaitUploads time.Duration
	// Complete is the updates after the norm (redone or deferred
	// buckets, staged in the same pass) and their uploads' queueing.
	Complete time.Duration
	// Deferred is the number of buckets not speculated (of Buckets).
	Deferred, Buckets int
	// LastUpload is the final wait for the uploads queued.
	LastUpload time.Duration
	// GCs is the number of garbage collections during the step.
	GCs uint32
	// With SetOverlapForward: ForwardWait is this step's forward's wait
	// on the host for the previous step's update, Background that
	// update's time after the norm (overlapping this step's forward).
	ForwardWait, Background time.Duration
}

// Timing reports where the host side of the last TrainStep went.
func (h *SDHostAdamW) Timing() HostStepTiming { return h.timing }

// numGC returns the number of completed garbage collections.
func numGC() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

// NewSDHostAdamW attaches opt, whose params must be s.Trainable()'s host
// values in order, to s: every later TrainStep also takes an AdamW step.
func NewSDHostAdamW(s *SDNet, opt *optim.AdamW) (*SDHostAdamW, error) {
	if s.host != nil {
		return nil, errors.New("gpu: the SD executor already has a host optimizer")
	}
	ps := opt.Params()
	if len(ps) != len(s.trainable) {
		return nil, fmt.Errorf("gpu: optimizer has %d params, the net %d trainable", len(ps), len(s.trainable))
	}
	for i, q := range s.trainable {
		if ps[i].Name != q.Name || len(ps[i].Data) != len(q.Data) || (len(q.Data) > 0 && &ps[i].Data[0] != &q.Data[0]) {
			return nil, fmt.Errorf("gpu: optimizer param %d is %s, not the net's %s values", i, ps[i].Name, q.Name)
		}
	}
	h := &SDHostAdamW{s: s, opt: opt, readyAt: map[int]int{}}
	fail := func(err error) (*SDHostAdamW, error) { h.Free(); return nil, err }
	var err error
	if h.down, err = s.dev.NewStream(); err != nil {
		return fail(err)
	}
	if h.up, err = s.dev.NewStream(); err != nil {
		return fail(err)
	}
	for _, q := range s.trainable {
		g, err := s.dev.NewPinned(len(q.Data))
		if err != nil {
			return fail(err)
		}
		h.pinG = append(h.pinG, g)
		h.hostG = append(h.hostG, g.Floats())
		w, err := s.dev.NewPinned(len(q.Data))
		if err != nil {
			return fail(err)
		}
		h.pinW = append(h.pinW, w)
		h.hostW = append(h.hostW, w.Floats())
	}
	h.plan()
	for range h.buckets {
		for _, evs := range []*[]*cuda.Event{&h.evGrad, &h.evCopied} {
			e, err := s.dev.NewEvent()
			if err != nil {
				return fail(err)
			}
			*evs = append(*evs, e)
		}
	}
	s.host = h
	return h, nil
}

// plan groups the trainable parameters into buckets by the layer after
// whose backward their gradient is final (the lowest layer using them).
func (h *SDHostAdamW) plan() {
	s := h.s
	net := s.p.net
	nl := len(net.Layers)
	index := map[string]int{}
	for j, q := range s.trainable {
		index[q.Name] = j
	}
	final := make([]int, len(s.trainable))
	for j := range final {
		final[j] = nl // never used: final before the backward
	}
	for i, l := range net.Layers {
		for _, n := range l.Params {
			if j, ok := index[n]; ok && s.p.backward[i] && i < final[j] {
				final[j] = i
			}
		}
	}
	byLayer := map[int][]int{}
	for j, i := range final {
		byLayer[i] = append(byLayer[i], j)
	}
	var cur []int
	size, last := 0, -1
	for i := nl; i >= 0; i-- {
		js := byLayer[i]
		if len(js) == 0 {
			continue
		}
		for _, j := range js {
			cur = append(cur, j)
			size += len(s.trainable[j].Data)
		}
		last = i
		if size >= sdBucketFloats {
			h.readyAt[i] = len(h.buckets)
			h.buckets = append(h.buckets, cur)
			cur, size = nil, 0
		}
	}
	if len(cur) > 0 {
		h.readyAt[last] = len(h.buckets)
		h.buckets = append(h.buckets, cur)
	}
}

// begin starts the step's update (before the backward pass).
func (h *SDHostAdamW) begin() error {
	t := HostStepTiming{GCs: numGC(), ForwardWait: h.fwdWait}
	h.fwdWait = 0
	if nf := h.next; nf != nil {
		if err := h.Wait(); err != nil {
			return err
		}
		t.Background = nf.took
	}
	h.timing = t
	h.ov = h.opt.BeginOverlapped()
	h.deferred = h.s.red != nil
	h.unscaled = h.s.scale.on && !h.deferred
	if h.unscaled {
		if err := h.s.scale.flag.Fill(0); err != nil {
			return err
		}
	}
	h.work, h.done = make(chan int, len(h.buckets)), make(chan error, 1)
	go h.worker(h.ov, h.work, h.done)
	return h.ready(len(h.s.p.net.Layers))
}

// ready hands over the bucket that layer i's backward made final, if any.
func (h *SDHostAdamW) ready(i int) error {
	if b, ok := h.readyAt[i]; ok && !h.deferred {
		return h.send(b)
	}
	return nil
}

// send queues bucket b's gradient copy after the work queued so far on
// the device's stream and hands it to the worker.
func (h *SDHostAdamW) send(b int) error {
	if h.unscaled {
		for _, j := range h.buckets[b] {
			if err := h.s.unscaleGrad(h.s.trainable[j].Name); err != nil {
				return err
			}
		}
	}
	if err := h.evGrad[b].Record(nil); err != nil {
		return err
	}
	if err := h.s.dev.Wait(h.down, h.evGrad[b]); err != nil {
		return err
	}
	for _, j := range h.buckets[b] {
		if err := h.s.wgrads[h.s.trainable[j].Name].DownloadAsync(h.pinG[j], h.down); err != nil {
			return err
		}
	}
	if err := h.evCopied[b].Record(h.down); err != nil {
		return err
	}
	h.work <- b
	return nil
}

// worker updates the buckets handed over, in order, and queues their
// uploads.
func (h *SDHostAdamW) worker(ov *optim.Overlapped, work <-chan int, done chan<- error) {
	var err error
	for b := range work {
		if err != nil {
			continue
		}
		if err = h.evCopied[b].Sync(); err != nil {
			continue
		}
		t0 := time.Now()
		var updated bool
		if updated, err = ov.Update(h.buckets[b], h.hostG, h.hostW); err != nil {
			continue
		}
		h.timing.Update += time.Since(t0)
		if updated {
			err = h.uploadStaged(h.buckets[b])
		} else {
			h.timing.Deferred++
		}
	}
	done <- err
}

// upload stages the host weights of trainable parameters js and queues
// their upload to the device.
func (h *SDHostAdamW) upload(js []int) error {
	for _, j := range js {
		parallelCopy(h.hostW[j], h.s.trainable[j].Data)
	}
	return h.uploadStaged(js)
}

// uploadStaged queues the upload of trainable parameters js's staging
// copies (written by the optimizer's update).
func (h *SDHostAdamW) uploadStaged(js []int) error {
	for _, j := range js {
		if err := h.s.weights[h.s.trainable[j].Name].UploadAsync(h.pinW[j], h.up); err != nil {
			return err
		}
	}
	return nil
}

// all lists every trainable index.
func (h *SDHostAdamW) all() []int {
	all := make([]int, len(h.s.trainable))
	for j := range all {
		all[j] = j
	}
	return all
}

// finish completes the step after the backward pass: the last updates,
// the norm, a clipped step redone, every upload done.
func (h *SDHostAdamW) finish() error {
	if _, skipped := h.s.LossScale(); skipped { // an fp16 overflow: no update
		return h.skip()
	}
	if h.deferred {
		for b := range h.buckets {
			if err := h.send(b); err != nil {
				h.abort(true)
				return err
			}
		}
	}
	t0 := time.Now()
	close(h.work)
	if err := <-h.done; err != nil {
		h.abort(false)
		return err
	}
	h.timing.Tail = time.Since(t0)
	h.timing.Buckets = len(h.buckets)
	st, restored, err := h.ov.Finish()
	h.stats, h.stepErr = st, err
	if st.Clipped || restored {
		// the speculative uploads are done before their staging is reused
		t0 = time.Now()
		if err := h.up.Sync(); err != nil {
			h.abort(false)
			return err
		}
		h.timing.WaitUploads = time.Since(t0)
	}
	if err == nil && h.overlapFwd {
		h.completeLater(h.ov)
		h.ov = nil
		h.timing.GCs = numGC() - h.timing.GCs
		return nil
	}
	if err == nil {
		// each bucket redone (clipped) or updated once (deferred) and its
		// staging uploaded while the next one computes, the first
		// layers' first
		t0 = time.Now()
		for b := len(h.buckets) - 1; b >= 0; b-- {
			changed, err := h.ov.Complete(h.buckets[b], h.hostG, h.hostW)
			if err == nil && changed {
				err = h.uploadStaged(h.buckets[b])
			}
			if err != nil {
				h.abort(false)
				return err
			}
		}
		h.timing.Complete = time.Since(t0)
	}
	if restored {
		if err := h.upload(h.all()); err != nil {
			return err
		}
	}
	h.ov = nil
	t0 = time.Now()
	err = h.up.Sync()
	h.timing.LastUpload = time.Since(t0)
	h.timing.GCs = numGC() - h.timing.GCs
	return err
}

// skip gives up a step the loss scale skipped (an fp16 overflow): the
// buckets updated during the backward pass get their weights and moments
// back, on the host and on the device, and the step is not taken.
func (h *SDHostAdamW) skip() error {
	close(h.work)
	err := <-h.done
	speculated := h.unscaled && h.timing.Deferred < len(h.buckets) // else none went over
	h.timing.Buckets = len(h.buckets)
	h.ov.Abort(h.hostG)
	h.ov, h.stats, h.stepErr = nil, optim.Stats{Step: h.opt.StepCount()}, nil
	if err == nil && speculated {
		err = h.reuploadAll()
	}
	h.timing.GCs = numGC() - h.timing.GCs
	return err
}

// reuploadAll uploads every trainable weight's host value again, once the
// uploads queued before are done (their staging is reused).
func (h *SDHostAdamW) reuploadAll() error {
	if err := h.up.Sync(); err != nil {
		return err
	}
	if err := h.upload(h.all()); err != nil {
		return err
	}
	return h.up.Sync()
}

// abort gives up a failed step: the host values restored (a step whose
// norm is known: carried through) and uploaded.
func (h *SDHostAdamW) abort(running bool) {
	if h.ov == nil {
		return
	}
	if running {
		close(h.work)
		<-h.done
	}
	h.ov.Abort(h.hostG)
	h.ov = nil
	h.reuploadAll()
	h.stepErr = errors.New("gpu: the training step failed before its update")
}

// Stats reports the AdamW step of the last TrainStep (an error wrapping
// optim.ErrNonFinite for a non-finite gradient: nothing was changed).
func (h *SDHostAdamW) Stats() (optim.Stats, error) { return h.stats, h.stepErr }

// Free detaches the optimizer from the net and releases its host buffers
// (after the last step's update).
func (h *SDHostAdamW) Free() {
	h.Wait()
	h.freeOverlap()
	if h.s.host == h {
		h.s.host = nil
	}
	for _, p := range append(h.pinG, h.pinW...) {
		p.Free()
	}
	h.pinG, h.pinW, h.hostG, h.hostW = nil, nil, nil, nil
	for _, e := range append(h.evGrad, h.evCopied...) {
		e.Destroy()
	}
	h.evGrad, h.evCopied = nil, nil
	for _, st := range []*cuda.Stream{h.down, h.up} {
		if st != nil {
			st.Destroy()
		}
	}
	h.down, h.up = nil, nil
}
