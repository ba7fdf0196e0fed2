package gpu

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// DeviceAdamW is AdamW with its moments and its update on the GPU
// (optimizer_state: device), the same arithmetic as trainer/optim.AdamW:
// global-norm clipping, bias correction, decoupled weight decay. It reads
// the step's device gradients and updates the device weights in place; the
// host parameters are refreshed only by DownloadWeights.
type DeviceAdamW struct {
	s       adamTarget
	cfg     optim.Config
	m, v    []*cuda.Tensor // views of arena
	arena   *arena
	noDecay []bool
	chunks  *adamChunks // the multi-tensor kernels' table (device_adamw_chunks.go)
	step    int
}

// adamTarget is what DeviceAdamW updates: an executor's trainable
// parameters with their device weights and gradients.
type adamTarget struct {
	dev             *cuda.Device
	k               *kernels
	trainable       []*model.Param
	weights, wgrads map[string]*cuda.Tensor
	freed           func() // called by Free
	// skipped, when not nil, reports that the last step's gradients were
	// thrown away (an fp16 loss-scale overflow): Step takes no step.
	skipped func() bool
}

// NewDeviceAdamW allocates zero moments for every trainable parameter of
// s. noDecay (may be nil) exempts parameters from weight decay. It turns
// off the step's host gradient copies, which the device optimizer does not
// need.
func NewDeviceAdamW(s *Step, cfg optim.Config, noDecay func(name string) bool) (*DeviceAdamW, error) {
	o, err := newDeviceAdamW(adamTarget{dev: s.dev, k: s.k, trainable: s.trainable, weights: s.weights, wgrads: s.wgrads,
		freed: func() { s.hostGrads = true }}, cfg, noDecay)
	if err == nil {
		s.hostGrads = false
	}
	return o, err
}

func newDeviceAdamW(s adamTarget, cfg optim.Config, noDecay func(name string) bool) (*DeviceAdamW, error) {
	if cfg.LR < 0 || cfg.Beta1 < 0 || cfg.Beta1 >= 1 || cfg.Beta2 < 0 || cfg.Beta2 >= 1 || cfg.Eps <= 0 {
		return nil, fmt.Errorf("gpu: invalid AdamW config %+v", cfg)
	}
	o := &DeviceAdamW{s: s, cfg: cfg}
	// the moments share one allocation (arena.go)
	slots := 0
	for _, q := range s.trainable {
		slots += 2 * arenaNeed(len(q.Data))
	}
	var err error
	if o.arena, err = newArena(s.dev, slots); err != nil {
		return nil, err
	}
	for _, q := range s.trainable {
		m, err := o.arena.take(s.dev, len(q.Data))
		if err != nil {
			o.Free()
			return nil, err
		}
		o.m = append(o.m, m)
		v, err := o.arena.take(s.dev, len(q.Data))
		if err != nil {
			o.Free()
			return nil, err
		}
		o.v = append(o.v, v)
		if err := m.Fill(0); err != nil {
			o.Free()
			return nil, err
		}
		if err := v.Fill(0); err != nil {
			o.Free()
			return nil, err
		}
		o.noDecay = append(o.noDecay, noDecay != nil && noDecay(q.Name))
	}
	if _, err := o.chunkTable(); err != nil {
		o.Free()
		return nil, err
	}
	return o, nil
}

// Bytes is the device memory the optimizer state takes.
func (o *DeviceAdamW) Bytes() int64 {
	var n int64
	for i := range o.m {
		n += o.m[i].Bytes() + o.v[i].Bytes()
	}
	return n
}

// Step applies one update from the gradients of the step's last Run. After
// a step the fp16 loss scale skipped (an overflow: its gradients are zero)
// it changes nothing, as PyTorch's GradScaler skips optimizer.step: no
// moment decay, no weight decay, the step count kept; the Stats then
// report the last step taken.
func (o *DeviceAdamW) Step() (optim.Stats, error) {
	if o.s.skipped != nil && o.s.skipped() {
		return optim.Stats{Step: o.step}, nil
	}
	c, err := o.chunkTable()
	if err != nil {
		return optim.Stats{}, err
	}
	var sum float64
	if c.n > 0 {
		if err := o.s.k.launch("sumsq_chunks", c.n, cuda.PtrArg(c.partial.Ptr()), cuda.PtrArg(c.tab.Ptr())); err != nil {
			return optim.Stats{}, err
		}
		host, err := c.partial.ToHost()
		if err != nil {
			return optim.Stats{}, err
		}
		for _, v := range unsafe.Slice((*float64)(unsafe.Pointer(&host[0])), c.n) {
			sum += v
		}
	}
	norm := math.Sqrt(sum)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return optim.Stats{Step: o.step + 1, GradNorm: norm}, fmt.Errorf("%w (global norm %v) at step %d", optim.ErrNonFinite, norm, o.step+1)
	}
	o.step++
	st := optim.Stats{Step: o.step, LR: o.cfg.LR * o.cfg.Schedule.Factor(o.step), GradNorm: norm}
	scale := float32(1)
	if o.cfg.ClipNorm > 0 && norm > o.cfg.ClipNorm {
		scale = float32(o.cfg.ClipNorm / (norm + 1e-6))
		st.Clipped = true
	}
	c1 := 1 - math.Pow(o.cfg.Beta1, float64(o.step))
	c2 := 1 - math.Pow(o.cfg.Beta2, float64(o.step))
	if c.n == 0 {
		return st, nil
	}
	if err := o.s.k.launch("adamw_chunks", c.n, cuda.PtrArg(c.tab.Ptr()), cuda.F32Arg(scale), cuda.F32Arg(float32(o.cfg.Beta1)),
		cuda.F32Arg(float32(o.cfg.Beta2)), cuda.F32Arg(float32(st.LR/c1)), cuda.F32Arg(float32(math.Sqrt(c2))), cuda.F32Arg(float32(o.cfg.Eps)),
		cuda.F32Arg(float32(1-st.LR*o.cfg.WeightDecay))); err != nil {
		return st, err
	}
	return st, nil
}

// DownloadWeights copies the device values of the trainable parameters into
// their host Data (for checkpoints and validation on the host).
func (o *DeviceAdamW) DownloadWeights() error {
	var errs []error
	for _, q := range o.s.trainable {
		if err := o.s.weights[q.Name].Download(q.Data); err != nil {
			errs = append(errs, fmt.Errorf("gpu: download %s: %w", q.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Free releases the moments.
func (o *DeviceAdamW) Free() {
	for i := range o.m {
		o.m[i].Free()
	}
	for i := range o.v {
		o.v[i].Free()
	}
	o.freeChunks()
	o.arena.free()
	if o.s.freed != nil {
		o.s.freed()
	}
}
