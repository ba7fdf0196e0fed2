package gpu

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Options configures NewStep. The zero value is GPU 0, strict float32.
type Options struct {
	// Ordinal is the GPU to use.
	Ordinal int
	// TF32 lets matrix products use TF32 tensor cores.
	TF32 bool
	// CacheDir is trainer/cuda's compiled-kernel cache ("" its default).
	CacheDir string
	// Profile records device time per layer kind and pass (see Profile) and
	// times the gradient copies against the backward pass (Timing.GradCopy).
	Profile bool
	// Logger receives trainer/cuda's records (nil: none).
	Logger *slog.Logger
}

// Step is the training step of one network on one GPU for a fixed batch
// shape. It is not safe for concurrent use.
type Step struct {
	dev   *cuda.Device
	k     *kernels
	p     *plan
	video bool
	skip  int

	params     *model.Params
	trainable  []*model.Param
	weights    map[string]*cuda.Tensor // every parameter the net uses
	wgrads     map[string]*cuda.Tensor // trainable parameters only
	pinGrads   []*cuda.Pinned          // trainable order
	pinWeights []*cuda.Pinned          // staging of UploadWeights, trainable order
	gradIndex  map[string]int

	// step inputs: pinned staging and their device copies
	pinInput, pinTimesteps, pinTarget *cuda.Pinned
	input, timesteps, target, loss    *cuda.Tensor

	copyStream *cuda.Stream
	gradReady  []*cuda.Event
	// with Options.Profile: events around each gradient copy on copyStream
	copyStart, copyEnd []*cuda.Event
	evStart            *cuda.Event
	evEnd              *cuda.Event
	lossHost           []float32
	hostGrads          bool // copy trainable gradients to the pinned buffers
	reducer            GradReducer

	// per-step state
	vals   []*cuda.Tensor
	grads  []*gbuf
	gn     map[int]*cuda.GroupNormStats
	attn   map[int]*attnSaved
	timing Timing
	eval   bool // the pass in progress is forward-only (Predict)
	// uploading: UploadWeights queued copies from pinWeights that no sync
	// has waited for yet.
	uploading bool
	prof      *profiler
	opts      Options
	pred      []float32 // Predict's result
}

// Timing is the wall-clock split of the last Run (host clock, after the
// device finished).
type Timing struct {
	Upload, Compute, Total time.Duration
	// GPU is the device time from the batch upload to the last gradient
	// kernel (CUDA events).
	GPU time.Duration
	// With Options.Profile, the device-to-host gradient copies on the copy
	// stream: their summed duration, the part of it that ran while the
	// backward pass was still computing, and how long the last copy ended
	// after the last backward kernel.
	GradCopy, GradCopyOverlap, GradCopyTail time.Duration
}

// NewStep opens GPU opts.Ordinal and prepares the training step of the
// video model (video true: the temporal parameters are trainable, the loss
// skips frame 0 of each clip) or of the backbone (video false: every
// backbone parameter is trainable, every frame counts), for batches of B
// clips of T frames of H x W, exactly as model.BuildTrain does on the CPU.
// Every weight is uploaded once; p's host values of the trainable
// parameters are read again by UploadWeights.
func NewStep(p *model.Params, video bool, B, T, H, W int, opts Options) (*Step, error) {
	if ok, why := cuda.Available(); !ok {
		return nil, fmt.Errorf("gpu: no usable GPU: %s", why)
	}
	dev, err := cuda.Open(opts.Ordinal, cuda.Options{TF32: opts.TF32, CacheDir: opts.CacheDir, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("gpu: open GPU %d: %w", opts.Ordinal, err)
	}
	s, err := newStep(dev, p, video, B, T, H, W, opts)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return s, nil
}

func newStep(dev *cuda.Device, p *model.Params, video bool, B, T, H, W int, opts Options) (*Step, error) {
	net, err := model.Describe(p.Config, video)
	if err != nil {
		return nil, err
	}
	if T <= net.LossSkip {
		return nil, fmt.Errorf("gpu: training needs more than %d frames per clip (the loss skips %d), got %d", net.LossSkip, net.LossSkip, T)
	}
	pl, err := newPlan(net, B, T, H, W, func(s model.ParamSpec) bool { return s.Temporal == video })
	if err != nil {
		return nil, err
	}
	s := &Step{dev: dev, p: pl, video: video, params: p, weights: map[string]*cuda.Tensor{},
		wgrads: map[string]*cuda.Tensor{}, gradIndex: map[string]int{}, hostGrads: true, opts: opts,
		skip: net.LossSkip}
	if s.k, err = openKernels(dev); err != nil {
		s.Close()
		return nil, fmt.Errorf("gpu: kernels: %w", err)
	}
	used := map[string]bool{}
	for _, l := range net.Layers {
		for _, n := range l.Params {
			used[n] = true
		}
	}
	for _, q := range p.List {
		if !used[q.Name] {
			continue
		}
		t, err := dev.FromHost(q.Data, q.Shape...)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("gpu: upload %s: %w", q.Name, err)
		}
		s.weights[q.Name] = t
		if !pl.trainable[q.Name] {
			continue
		}
		g, err := dev.NewTensor(q.Shape...)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("gpu: gradient of %s: %w", q.Name, err)
		}
		s.wgrads[q.Name] = g
		pg, err := dev.NewPinned(len(q.Data))
		if err != nil {
			s.Close()
			return nil, err
		}
		ev, err := dev.NewEvent()
		if err != nil {
			s.Close()
			return nil, err
		}
		pw, err := dev.NewPinned(len(q.Data))
		if err != nil {
			s.Close()
			return nil, err
		}
		if opts.Profile {
			for _, evs := range []*[]*cuda.Event{&s.copyStart, &s.copyEnd} {
				e, err := dev.NewEvent()
				if err != nil {
					s.Close()
					return nil, err
				}
				*evs = append(*evs, e)
			}
		}
		s.gradIndex[q.Name] = len(s.trainable)
		s.trainable = append(s.trainable, q)
		s.pinGrads = append(s.pinGrads, pg)
		s.pinWeights = append(s.pinWeights, pw)
		s.gradReady = append(s.gradReady, ev)
	}
	if len(s.trainable) == 0 {
		s.Close()
		return nil, errors.New("gpu: no trainable parameters")
	}
	N := pl.N
	inShape := pl.shapes[net.Input]
	outShape := pl.shapes[net.Output]
	for _, b := range []struct {
		pin   **cuda.Pinned
		t     **cuda.Tensor
		shape []int
	}{{&s.pinInput, &s.input, inShape}, {&s.pinTimesteps, &s.timesteps, []int{N}}, {&s.pinTarget, &s.target, outShape}} {
		if *b.pin, err = dev.NewPinned(numel(b.shape)); err != nil {
			s.Close()
			return nil, err
		}
		if *b.t, err = dev.NewTensor(b.shape...); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.loss, err = dev.NewTensor(1); err != nil {
		s.Close()
		return nil, err
	}
	if s.copyStream, err = dev.NewStream(); err != nil {
		s.Close()
		return nil, err
	}
	if s.evStart, err = dev.NewEvent(); err != nil {
		s.Close()
		return nil, err
	}
	if s.evEnd, err = dev.NewEvent(); err != nil {
		s.Close()
		return nil, err
	}
	s.lossHost = make([]float32, 1)
	if opts.Profile {
		if s.prof, err = newProfiler(dev, 2*len(net.Layers)+8); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// LossSkip is how many leading frames of each clip the loss ignores (the
// network description's LossSkip).
func (s *Step) LossSkip() int { return s.skip }

// Device is the GPU the step runs on.
func (s *Step) Device() *cuda.Device { return s.dev }

// Trainable lists the parameters gradients are taken for, in Params order
// (the order of model.TrainGraph.Trainable); Grad(i) belongs to Trainable()[i].
func (s *Step) Trainable() []*model.Param { return s.trainable }

// Grad returns the gradient of Trainable()[i] from the last Run, in pinned
// host memory owned by the step (valid until the next Run).
func (s *Step) Grad(i int) []float32 { return s.pinGrads[i].Floats() }

// Grads returns every gradient of the last Run, in Trainable order.
func (s *Step) Grads() [][]float32 {
	out := make([][]float32, len(s.pinGrads))
	for i, p := range s.pinGrads {
		out[i] = p.Floats()
	}
	return out
}

// Timing reports the last Run's split.
func (s *Step) Timing() Timing { return s.timing }

// Batch returns the pinned staging buffers of the next Run's input
// (B*T, InChannels, H, W), timesteps (B*T) and target (B*T, OutChannels, H, W).
// A caller that fills them in place saves Run one host copy.
func (s *Step) Batch() (input, timesteps, target []float32) {
	return s.pinInput.Floats(), s.pinTimesteps.Floats(), s.pinTarget.Floats()
}

// stage copies src into the pinned buffer unless src is that buffer.
func stage(p *cuda.Pinned, src []float32, what string) error {
	dst := p.Floats()
	if len(src) != len(dst) {
		return fmt.Errorf("gpu: %s has %d values, want %d", what, len(src), len(dst))
	}
	if &src[0] != &dst[0] {
		parallelCopy(dst, src)
	}
	return nil
}

// Step runs forward, loss and backward on one batch and returns the loss;
// the trainable gradients are then in Grad(i) (the same contract as
// model.TrainGraph.Step).
func (s *Step) Step(input, timesteps, target []float32) (float32, error) {
	return s.Run(input, timesteps, target)
}

// Run is Step.
func (s *Step) Run(input, timesteps, target []float32) (float32, error) {
	t0 := time.Now()
	if err := stage(s.pinInput, input, "input"); err != nil {
		return 0, err
	}
	if err := stage(s.pinTimesteps, timesteps, "timesteps"); err != nil {
		return 0, err
	}
	if err := stage(s.pinTarget, target, "target"); err != nil {
		return 0, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := s.evStart.Record(nil); err != nil {
		return 0, err
	}
	for _, u := range []struct {
		t *cuda.Tensor
		p *cuda.Pinned
	}{{s.input, s.pinInput}, {s.timesteps, s.pinTimesteps}, {s.target, s.pinTarget}} {
		if err := u.t.UploadAsync(u.p, nil); err != nil {
			return 0, fmt.Errorf("gpu: upload batch: %w", err)
		}
	}
	t1 := time.Now()
	loss, err := s.run()
	s.release()
	if err != nil {
		return 0, err
	}
	t2 := time.Now()
	s.timing = Timing{Upload: t1.Sub(t0), Compute: t2.Sub(t1), Total: t2.Sub(t0)}
	if ms, err := cuda.Elapsed(s.evStart, s.evEnd); err == nil {
		s.timing.GPU = msDuration(ms)
	}
	if s.copyStart != nil && s.hostGrads {
		if err := s.timeGradCopies(); err != nil {
			return 0, err
		}
	}
	return loss, nil
}

// forwardAll runs every layer's forward pass on the uploaded batch.
func (s *Step) forwardAll() error {
	net := s.p.net
	s.vals = make([]*cuda.Tensor, len(net.Values))
	s.grads = make([]*gbuf, len(net.Values))
	s.gn = map[int]*cuda.GroupNormStats{}
	s.attn = map[int]*attnSaved{}
	s.vals[net.Input] = s.input
	s.vals[net.Timesteps] = s.timesteps
	if err := s.prof.mark("start"); err != nil {
		return err
	}
	for i, l := range net.Layers {
		if err := s.forward(i); err != nil {
			return fmt.Errorf("gpu: forward layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		if err := s.prof.mark(layerLabel(l, "fwd")); err != nil {
			return err
		}
	}
	return nil
}

// Predict runs the network forward on input (B*T, InChannels, H, W) and
// timesteps (B*T) with the current weights and returns the predicted noise
// (B*T, OutChannels, H, W), owned by the step and valid until the next
// call (model.ForwardGraph.Predict's contract). Nothing is kept for a
// backward pass.
func (s *Step) Predict(input, timesteps []float32) ([]float32, error) {
	if err := stage(s.pinInput, input, "input"); err != nil {
		return nil, err
	}
	if err := stage(s.pinTimesteps, timesteps, "timesteps"); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s.eval = true
	defer func() {
		s.eval = false
		if s.prof != nil {
			s.prof.n = 0 // forward-only passes are not profiled
		}
	}()
	defer s.release()
	if err := s.input.UploadAsync(s.pinInput, nil); err != nil {
		return nil, err
	}
	if err := s.timesteps.UploadAsync(s.pinTimesteps, nil); err != nil {
		return nil, err
	}
	if err := s.forwardAll(); err != nil {
		return nil, err
	}
	out := s.vals[s.p.net.Output]
	if len(s.pred) != out.Len() {
		s.pred = make([]float32, out.Len())
	}
	if err := out.Download(s.pred); err != nil {
		return nil, fmt.Errorf("gpu: predict: %w", err)
	}
	s.uploading = false
	return s.pred, nil
}

func (s *Step) run() (float32, error) {
	pl := s.p
	net := pl.net
	if err := s.forwardAll(); err != nil {
		return 0, err
	}
	pred := s.vals[net.Output]
	fs := nn.FrameMSEShape{B: pl.B, T: pl.T, E: numel(pl.shapes[net.Output][1:]), Skip: s.skip}
	if err := s.dev.FrameMSE(s.loss, pred, s.target, fs); err != nil {
		return 0, fmt.Errorf("gpu: loss: %w", err)
	}
	dpred, err := s.dev.NewTensor(pred.Shape...)
	if err != nil {
		return 0, err
	}
	if err := s.dev.FrameMSEBackward(dpred, pred, s.target, 1, fs); err != nil {
		dpred.Free()
		return 0, fmt.Errorf("gpu: loss backward: %w", err)
	}
	pred.Free()
	s.vals[net.Output] = nil
	s.grads[net.Output] = &gbuf{t: dpred, refs: 1}
	if err := s.prof.mark("loss fwd+bwd"); err != nil {
		return 0, err
	}
	for i := len(net.Layers) - 1; i >= 0; i-- {
		if !pl.backward[i] {
			continue
		}
		l := net.Layers[i]
		if err := s.backwardLayer(i); err != nil {
			return 0, fmt.Errorf("gpu: backward layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		if err := s.prof.mark(layerLabel(l, "bwd")); err != nil {
			return 0, err
		}
	}
	if s.reducer != nil {
		if err := s.reduced(); err != nil {
			return 0, fmt.Errorf("gpu: gradient reduction: %w", err)
		}
	}
	if err := s.evEnd.Record(nil); err != nil {
		return 0, err
	}
	if err := s.loss.Download(s.lossHost); err != nil {
		return 0, fmt.Errorf("gpu: step: %w", err)
	}
	s.uploading = false
	if err := s.prof.collect(); err != nil {
		return 0, err
	}
	if err := s.copyStream.Sync(); err != nil {
		return 0, fmt.Errorf("gpu: gradient copies: %w", err)
	}
	return s.lossHost[0], nil
}

// release frees whatever a failed or finished step still holds.
func (s *Step) release() {
	for v, t := range s.vals {
		if t != nil && t != s.input && t != s.timesteps {
			t.Free()
		}
		s.vals[v] = nil
	}
	for v, g := range s.grads {
		if g != nil {
			g.release()
			s.grads[v] = nil
		}
	}
	for i, st := range s.gn {
		st.Free()
		delete(s.gn, i)
	}
	for i, a := range s.attn {
		a.free()
		delete(s.attn, i)
	}
}

// UploadWeights copies the host values of the trainable parameters to the
// GPU (after the optimizer updated them): into pinned staging on all cores,
// then asynchronous copies queued before the next step's work.
func (s *Step) UploadWeights() error {
	if s.uploading {
		// the staging buffers still feed the previous upload
		if err := s.dev.Sync(); err != nil {
			return err
		}
	}
	s.uploading = true
	parallelEach(len(s.trainable), func(i int) {
		copy(s.pinWeights[i].Floats(), s.trainable[i].Data)
	})
	for i, q := range s.trainable {
		if err := s.weights[q.Name].UploadAsync(s.pinWeights[i], nil); err != nil {
			return fmt.Errorf("gpu: upload %s: %w", q.Name, err)
		}
	}
	return nil
}

// MemStats reports the caching allocator's counters (the peak covers
// weights, activations, gradients and scratch).
func (s *Step) MemStats() cuda.MemStats { return s.dev.MemStats() }

// Close frees everything and closes the device.
func (s *Step) Close() error {
	if s.dev == nil {
		return nil
	}
	for _, t := range s.weights {
		t.Free()
	}
	for _, t := range s.wgrads {
		t.Free()
	}
	for _, p := range []*cuda.Pinned{s.pinInput, s.pinTimesteps, s.pinTarget} {
		p.Free()
	}
	for _, p := range s.pinGrads {
		p.Free()
	}
	for _, p := range s.pinWeights {
		p.Free()
	}
	for _, evs := range [][]*cuda.Event{s.gradReady, s.copyStart, s.copyEnd} {
		for _, e := range evs {
			e.Destroy()
		}
	}
	if s.copyStream != nil {
		s.copyStream.Destroy()
	}
	for _, e := range []*cuda.Event{s.evStart, s.evEnd} {
		if e != nil {
			e.Destroy()
		}
	}
	for _, t := range []*cuda.Tensor{s.input, s.timesteps, s.target, s.loss} {
		t.Free()
	}
	if s.prof != nil {
		s.prof.free()
	}
	err := s.dev.Close()
	s.dev = nil
	return err
}
