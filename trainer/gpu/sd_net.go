package gpu

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// SDNet runs a network description of the Stable Diffusion family (the SD
// UNet, plain or pseudo-3D, the VAE encoder and decoder, the CLIP text
// encoder) on one GPU in float32: forward passes, and training steps whose
// gradients flow through the frozen layers to the trainable parameters
// only (no frozen weight gets a gradient). Layers follow the CPU
// interpreter (model.InterpretInputs, model.RunNet) op by op. Not safe for
// concurrent use.
type SDNet struct {
	dev    *cuda.Device
	k      *kernels
	tc     gpuTconv
	p      *sdPlan
	params *model.Params

	// arena holds the weights and parameter gradients (views of it)
	arena     *arena
	weights   map[string]*cuda.Tensor
	halfW     map[string]*cuda.Tensor // 16-bit frozen weights (SDOptions.Precision bf16 or fp16)
	halfShape map[string][]int        // their shapes
	prec      Precision
	bf16      bool // half precision: attention on bfloat16 operands (sd_bf16.go)
	scale     lossScale
	wgrads    map[string]*cuda.Tensor
	trainable []*model.Param

	vals  []*cuda.Tensor
	grads []*cuda.Tensor
	// ln holds the row statistics of each trainable pass's layer norms.
	ln map[int]*lnSaved
	// gnSt holds the group statistics of the fused GroupNorm+SiLU layers
	// (sd_gnsilu.go), gnFuse which layers those are.
	gnSt   map[int]*cuda.GroupNormStats
	gnFuse []bool
	eval   bool
	// ck is the checkpointed step's schedule (nil: no checkpointing); ckSeg
	// the segment being recomputed (or ckptOff, ckptFirstPass); noSave
	// skips the layer norm statistics.
	ck     *ckptPlan
	ckSeg  int
	noSave bool
	// packed holds the 16-bit copies of a checkpointed step's boundary
	// values in the half precisions (sd_ckpt.go), by value.
	packed map[int]*cuda.Tensor
	// sv packs the saved values of a step without checkpointing into 16
	// bits (sd_saved.go; nil: none), planned for svFlash (flashOff) with
	// savedMin (SDOptions.SavedPackMin).
	sv        *savedPlan
	svPlanned bool
	svFlash   bool
	savedMin  int
	// host is the overlapped host optimizer (NewSDHostAdamW), nil if none.
	host *SDHostAdamW

	prof       *profiler
	evStart    *cuda.Event
	evEnd      *cuda.Event
	lossT      *cuda.Tensor
	lastGPU    time.Duration
	attnBudget int // floats of attention scores per chunk
	// ff runs forward-only passes' large feed-forwards in chunks of rows
	// (sd_chunk.go).
	ff *ffChunks
	// hf runs forward-only passes' 16-bit convolutions fused with the
	// group norm, upsample, padding and add around them (sd_half_fused.go).
	hf *halfChains
	// red all-reduces the gradients in data-parallel training (sd_reduce.go)
	red *sdReduce
	// fl is the fused attention of the half mode (flash.go); flashOff
	// keeps the chunked cuBLAS attention instead (benchmarks, tests).
	fl       *flashState
	flashOff bool
}

type lnSaved struct{ mean, rstd *cuda.Tensor }

func (l *lnSaved) free() { l.mean.Free(); l.rstd.Free() }

// SDOptions configures NewSDNet.
type SDOptions struct {
	// Trainable selects the parameters gradients are taken for (nil: none,
	// forward only).
	Trainable func(model.ParamSpec) bool
	// Profile records device time per layer kind and pass (SDNet.Profile).
	Profile bool
	// Precision of the frozen backbone (sd_half.go): fp32 (""), tf32,
	// bf16 or fp16.
	Precision Precision
	// BF16 is the older spelling of Precision: BF16.
	BF16 bool
	// Checkpointing recomputes each block's forward in the backward pass
	// instead of keeping its inner values (sd_ckpt.go): the training step
	// holds the block boundaries and one block's values at a time.
	Checkpointing bool
	// CheckpointFloat32 keeps a checkpointed step's block boundaries in
	// float32 in the half precisions too (else 16 bits: sd_ckpt.go).
	CheckpointFloat32 bool
	// CheckpointKeepAttention: a checkpointed half-precision step keeps
	// the fused attention's results of the layers with at least this many
	// queries x keys for the backward, and its recompute skips them
	// (sd_ckpt_attn.go); 0: DefaultCheckpointKeepAttention, < 0: none.
	CheckpointKeepAttention int
	// SavedPackMin: a half-precision training step without checkpointing
	// keeps the values its backward reads of at least this many elements
	// in 16 bits from their last forward read to their backward
	// (sd_saved.go); 0: DefaultSDSavedPackMin, < 0: all float32.
	SavedPackMin int
	// AttentionScores bounds the float32 attention scores held at once
	// (elements; 0: 1<<28, 1 GiB).
	AttentionScores int
}

// NewSDNet uploads every parameter of net from p to dev and prepares passes
// over batches of B clips of T frames of H x W (a VAE or text encoder: B
// images or prompts, T = 1; H and W are the image size of the net's scale 1).
func NewSDNet(dev *cuda.Device, net *model.Net, p *model.Params, B, T, H, W int, o SDOptions) (*SDNet, error) {
	pl, err := newSDPlan(net, B, T, H, W, o.Trainable)
	if err != nil {
		return nil, err
	}
	prec, err := o.precision()
	if err != nil {
		return nil, err
	}
	k, err := openKernels(dev)
	if err != nil {
		return nil, fmt.Errorf("gpu: kernels: %w", err)
	}
	s := &SDNet{dev: dev, k: k, p: pl, params: p, weights: map[string]*cuda.Tensor{}, wgrads: map[string]*cuda.Tensor{},
		halfW: map[string]*cuda.Tensor{}, halfShape: map[string][]int{}, prec: prec, bf16: prec.Half(), scale: newLossScale(prec),
		ln: map[int]*lnSaved{}, gnSt: map[int]*cuda.GroupNormStats{}, attnBudget: o.AttentionScores, ckSeg: ckptOff, packed: map[int]*cuda.Tensor{},
		savedMin: o.SavedPackMin}
	if s.savedMin == 0 {
		s.savedMin = DefaultSDSavedPackMin
		if os.Getenv("PIPELINE_SD_SAVED_PACK") == "0" { // comparisons: every saved value float32
			s.savedMin = -1
		}
	}
	if o.Checkpointing && o.Trainable != nil {
		keep := o.CheckpointKeepAttention
		if keep == 0 {
			keep = DefaultCheckpointKeepAttention
		}
		if !prec.Half() {
			keep = -1
		}
		s.ck = newCkptPlan(pl, prec.Half() && !o.CheckpointFloat32, keep)
	}
	if s.attnBudget <= 0 {
		s.attnBudget = 1 << 28
	}
	s.tc = gpuTconv{&Step{dev: dev, k: k}}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// the weights and parameter gradients share one allocation (arena.go)
	slots := 0
	for _, spec := range net.Params {
		n := spec.Size()
		switch {
		case halfWeight(net, prec, o.Trainable, spec.Name):
			slots += arenaNeed(cuda.HalfLen(n))
		case pl.trainable[spec.Name]:
			slots += 2 * arenaNeed(n)
		default:
			slots += arenaNeed(n)
		}
	}
	if s.arena, err = newArena(dev, slots); err != nil {
		s.Close()
		return nil, fmt.Errorf("gpu: weights: %w", err)
	}
	for _, spec := range net.Params {
		q := p.Get(spec.Name)
		if q == nil {
			s.Close()
			return nil, fmt.Errorf("gpu: parameter %s missing", spec.Name)
		}
		if len(q.Data) != spec.Size() {
			s.Close()
			return nil, fmt.Errorf("gpu: parameter %s has %d values, want %d", spec.Name, len(q.Data), spec.Size())
		}
		if halfWeight(net, prec, o.Trainable, spec.Name) {
			h, err := s.uploadHalf(q.Data, spec.Shape)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("gpu: upload %s: %w", spec.Name, err)
			}
			s.halfW[spec.Name] = h
			s.halfShape[spec.Name] = spec.Shape
			continue
		}
		t, err := s.arena.take(dev, spec.Shape...)
		if err == nil {
			err = t.Upload(q.Data)
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("gpu: upload %s: %w", spec.Name, err)
		}
		s.weights[spec.Name] = t
		if pl.trainable[spec.Name] {
			g, err := s.arena.take(dev, spec.Shape...)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("gpu: gradient of %s: %w", spec.Name, err)
			}
			s.wgrads[spec.Name] = g
			s.trainable = append(s.trainable, q)
		}
	}
	for _, e := range []**cuda.Event{&s.evStart, &s.evEnd} {
		if *e, err = dev.NewEvent(); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.lossT, err = dev.NewTensor(1); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.scale.alloc(dev); err != nil {
		s.Close()
		return nil, err
	}
	if o.Profile {
		if s.prof, err = newProfiler(dev, 3*len(net.Layers)+8); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Trainable lists the parameters the training step takes gradients for, in
// the net's parameter order.
func (s *SDNet) Trainable() []*model.Param { return s.trainable }

// GPUTime is the device time of the last pass (CUDA events).
func (s *SDNet) GPUTime() time.Duration { return s.lastGPU }

// MemStats reports the device allocator's counters.
func (s *SDNet) MemStats() cuda.MemStats { return s.dev.MemStats() }

// upload stages the pass's inputs: the net's input, timesteps and context.
func (s *SDNet) upload(in model.Inputs) error {
	net, pl := s.p.net, s.p
	s.vals = make([]*cuda.Tensor, len(net.Values))
	s.grads = make([]*cuda.Tensor, len(net.Values))
	put := func(v int, data []float32, what string) error {
		if v < 0 {
			return nil
		}
		if len(data) != numel(pl.shapes[v]) {
			return fmt.Errorf("gpu: %s has %d values, want %d (shape %v)", what, len(data), numel(pl.shapes[v]), pl.shapes[v])
		}
		t, err := s.dev.FromHost(data, pl.shapes[v]...)
		if err != nil {
			return err
		}
		s.vals[v] = t
		return nil
	}
	if err := put(net.Input, in.Input, "input"); err != nil {
		return err
	}
	if err := put(net.Timesteps, in.Timesteps, "timesteps"); err != nil {
		return err
	}
	return put(net.Context, in.Context, "context")
}

func (s *SDNet) forwardAll() error {
	if err := s.evStart.Record(nil); err != nil {
		return err
	}
	if err := s.prof.mark("start"); err != nil {
		return err
	}
	for i, l := range s.p.net.Layers {
		if s.host != nil {
			if err := s.host.weightsFor(i); err != nil {
				return fmt.Errorf("gpu: host optimizer: %w", err)
			}
		}
		if err := s.forward(i); err != nil {
			return fmt.Errorf("gpu: forward layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		if err := s.prof.mark(s.fwdLabel(i, l)); err != nil {
			return err
		}
	}
	return nil
}

// Forward runs the net on in (Input; Timesteps and Context where the net
// takes them) and returns the output values named by outputs (none: the
// net's output), downloaded to the host.
func (s *SDNet) Forward(in model.Inputs, outputs ...int) (map[int][]float32, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if s.host != nil {
		if err := s.host.Wait(); err != nil {
			return nil, fmt.Errorf("gpu: host optimizer: %w", err)
		}
	}
	s.eval = true
	defer func() { s.eval = false }()
	defer s.release()
	if len(outputs) == 0 {
		outputs = []int{s.p.net.Output}
	}
	keep := map[int]bool{}
	for _, o := range outputs {
		keep[o] = true
	}
	saved := s.p.persistent
	s.p.persistent = append([]bool(nil), saved...)
	for o := range keep {
		s.p.persistent[o] = true
	}
	defer func() { s.p.persistent = saved }()
	if err := s.upload(in); err != nil {
		return nil, err
	}
	if err := s.forwardAll(); err != nil {
		return nil, err
	}
	if err := s.evEnd.Record(nil); err != nil {
		return nil, err
	}
	out := map[int][]float32{}
	for o := range keep {
		t := s.vals[o]
		if t == nil {
			return nil, fmt.Errorf("gpu: value %d was not computed", o)
		}
		h, err := t.ToHost()
		if err != nil {
			return nil, err
		}
		out[o] = h
	}
	s.timeLast()
	if err := s.prof.collect(); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *SDNet) timeLast() {
	if ms, err := cuda.Elapsed(s.evStart, s.evEnd); err == nil {
		s.lastGPU = msDuration(ms)
	}
}

// TrainStep runs forward, the loss (the mean squared error of the output
// against target over frames net.LossSkip.. of each clip, as
// model.BuildNetTrain) and backward, and returns the loss; Grads then holds
// the trainable gradients.
func (s *SDNet) TrainStep(in model.Inputs, target []float32) (float32, error) {
	if len(s.trainable) == 0 {
		return 0, errors.New("gpu: the net has no trainable parameters")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer s.release()
	pl, net := s.p, s.p.net
	if pl.T <= net.LossSkip {
		return 0, fmt.Errorf("gpu: training needs more than %d frames per clip", net.LossSkip)
	}
	if err := s.upload(in); err != nil {
		return 0, err
	}
	outShape := pl.shapes[net.Output]
	tgt, err := s.dev.FromHost(target, outShape...)
	if err != nil {
		return 0, fmt.Errorf("gpu: target: %w", err)
	}
	defer tgt.Free()
	for _, g := range s.wgrads {
		if err := g.Fill(0); err != nil {
			return 0, err
		}
	}
	if s.ck != nil {
		err = s.ckptForward()
	} else {
		s.planSaved()
		err = s.forwardAll()
	}
	if err != nil {
		return 0, err
	}
	pred := s.vals[net.Output]
	fs := nn.FrameMSEShape{B: pl.B, T: pl.T, E: numel(outShape) / (pl.B * pl.T), Skip: net.LossSkip}
	if err := s.dev.FrameMSE(s.lossT, pred, tgt, fs); err != nil {
		return 0, fmt.Errorf("gpu: loss: %w", err)
	}
	dpred, err := s.dev.NewTensor(outShape...)
	if err != nil {
		return 0, err
	}
	if err := s.dev.FrameMSEBackward(dpred, pred, tgt, s.scale.scale, fs); err != nil {
		dpred.Free()
		return 0, fmt.Errorf("gpu: loss backward: %w", err)
	}
	pred.Free()
	s.vals[net.Output] = nil
	s.grads[net.Output] = dpred
	if err := s.prof.mark("loss fwd+bwd"); err != nil {
		return 0, err
	}
	if s.host != nil {
		if err := s.host.begin(); err != nil {
			s.host.abort(true)
			return 0, err
		}
	}
	err = s.backwardAll()
	if err == nil {
		// the ranks' gradients averaged before the loss scale's check, so
		// every rank makes the same skip decision
		err = s.reduceWait()
	}
	if err == nil {
		if err = s.unscaleGrads(); err != nil {
			err = fmt.Errorf("gpu: loss scale: %w", err)
		}
	}
	if err == nil {
		err = s.evEnd.Record(nil)
	}
	if err != nil {
		if s.host != nil {
			s.host.abort(true)
		}
		return 0, err
	}
	if s.host != nil {
		if err := s.host.finish(); err != nil {
			return 0, fmt.Errorf("gpu: host optimizer: %w", err)
		}
	}
	loss := make([]float32, 1)
	if err := s.lossT.Download(loss); err != nil {
		return 0, fmt.Errorf("gpu: step: %w", err)
	}
	s.timeLast()
	if err := s.prof.collect(); err != nil {
		return 0, err
	}
	return loss[0], nil
}

// backwardAll runs the backward pass from the output's gradient.
func (s *SDNet) backwardAll() error {
	if s.ck != nil {
		return s.ckptBackward()
	}
	for i := len(s.p.net.Layers) - 1; i >= 0; i-- {
		if !s.p.backward[i] {
			continue
		}
		l := s.p.net.Layers[i]
		if err := s.unpackSaved(i); err != nil {
			return err
		}
		if err := s.backwardLayer(i); err != nil {
			return fmt.Errorf("gpu: backward layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		s.dropSaved(i)
		if err := s.backwardDone(i); err != nil {
			return err
		}
	}
	return nil
}

// backwardDone follows layer i's backward: the hand-over of the
// gradients it made final to the reducer (data-parallel) and to the host
// optimizer, and the profile mark.
func (s *SDNet) backwardDone(i int) error {
	if err := s.gradsReady(i); err != nil {
		return err
	}
	if err := s.prof.mark(sdLabel(s.p, s.p.net.Layers[i], "bwd")); err != nil {
		return err
	}
	if s.host != nil {
		return s.host.ready(i)
	}
	return nil
}

// Grads downloads the gradients of the last TrainStep, in Trainable order.
func (s *SDNet) Grads() ([][]float32, error) {
	out := make([][]float32, len(s.trainable))
	for i, q := range s.trainable {
		g, err := s.wgrads[q.Name].ToHost()
		if err != nil {
			return nil, err
		}
		out[i] = g
	}
	return out, nil
}

// release frees the pass's values, gradients and saved statistics.
func (s *SDNet) release() {
	for v, t := range s.vals {
		if t != nil {
			t.Free()
			s.vals[v] = nil
		}
	}
	for v, t := range s.grads {
		if t != nil {
			t.Free()
			s.grads[v] = nil
		}
	}
	for i, l := range s.ln {
		l.free()
		delete(s.ln, i)
	}
	for i, st := range s.gnSt {
		st.Free()
		delete(s.gnSt, i)
	}
	s.fl.release()
	s.freePacked()
}

// Profile returns the mean device milliseconds per profiled pass (training
// step or forward pass) by layer kind and pass, largest first (nil without SDOptions.Profile).
func (s *SDNet) Profile() []ProfileEntry {
	p := s.prof
	if p == nil || p.steps == 0 {
		return nil
	}
	var out []ProfileEntry
	for k, v := range p.total {
		out = append(out, ProfileEntry{k, v / float64(p.steps)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MS > out[j].MS })
	return out
}

// ResetProfile clears the profile totals.
func (s *SDNet) ResetProfile() {
	if s.prof != nil {
		s.prof.total = map[string]float64{}
		s.prof.steps = 0
	}
}

// Close frees the weights and gradients and an attached host optimizer
// (not the device).
func (s *SDNet) Close() {
	if s.host != nil {
		s.host.Free()
	}
	s.release()
	for _, t := range s.weights {
		t.Free()
	}
	for _, t := range s.wgrads {
		t.Free()
	}
	for _, t := range s.halfW {
		t.Free()
	}
	s.arena.free()
	s.arena = nil
	s.SetGradReducer(nil)
	s.weights, s.wgrads, s.halfW = map[string]*cuda.Tensor{}, map[string]*cuda.Tensor{}, map[string]*cuda.Tensor{}
	s.scale.free()
	for _, e := range []*cuda.Event{s.evStart, s.evEnd} {
		if e != nil {
			e.Destroy()
		}
	}
	s.evStart, s.evEnd = nil, nil
	if s.lossT != nil {
		s.lossT.Free()
		s.lossT = nil
	}
	if s.prof != nil {
		s.prof.free()
		s.prof = nil
	}
}

// sdLabel names a layer's work in the profile: its kind, temporal or not;
// attention with its query and key lengths.
func sdLabel(p *sdPlan, l model.Layer, pass string) string {
	k := string(l.Kind)
	if l.Kind == model.SeqAttention {
		q, kk := p.shapes[l.In[0]], p.shapes[l.In[1]]
		k = fmt.Sprintf("%s %dx%d", k, q[1], kk[1])
	}
	if l.Temporal {
		k += " (temporal)"
	}
	return k + " " + pass
}
