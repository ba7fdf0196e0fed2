package trainer

import (
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// sdGPUBackend trains a described net (the SD family's video UNet) with
// trainer/gpu's SD executor: weights resident on the device, gradients of
// the temporal parameters only, optionally with gradient checkpointing.
// Its optimizer (newSDOptimizer) runs inside the step: AdamW on the host
// overlapped with the backward pass (gpu.SDHostAdamW), or on the device
// (gpu.DeviceAdamW); without one the gradients are downloaded after each
// step.
type sdGPUBackend struct {
	dev   *cuda.Device
	s     *gpu.SDNet
	net   *model.Net
	ctx   []float32
	grads [][]float32
	// inStep: the optimizer reads the device gradients itself
	inStep bool
}

func newSDGPUBackend(o backendOptions, p *model.Params, sh trainShape) (*sdGPUBackend, error) {
	dev, err := cuda.Open(o.Ordinal, cuda.Options{TF32: o.TF32, Logger: o.Log})
	if err != nil {
		return nil, err
	}
	so := o.SD
	so.Trainable = func(q model.ParamSpec) bool { return q.Temporal }
	s, err := gpu.NewSDNet(dev, o.Net, p, sh.B, sh.netT(), sh.R, sh.R, so)
	if err != nil {
		dev.Close()
		return nil, err
	}
	o.Log.Info("training on the GPU", slog.String("device", dev.String()), slog.Bool("tf32", o.TF32), slog.String("executor", "sd"),
		slog.Bool("checkpointing", so.Checkpointing))
	return &sdGPUBackend{dev: dev, s: s, net: o.Net}, nil
}

func (b *sdGPUBackend) step(input, timesteps, target []float32) (float32, error) {
	loss, err := b.s.TrainStep(model.Inputs{Input: input, Timesteps: timesteps, Context: b.ctx}, target)
	if err != nil {
		return 0, err
	}
	if b.inStep {
		return loss, nil
	}
	if b.grads, err = b.s.Grads(); err != nil {
		return 0, err
	}
	return loss, nil
}

func (b *sdGPUBackend) close() {
	b.s.Close()
	b.dev.Close()
}

// Predict runs the forward pass on a batch of the training shape (the
// validation set) with the context set last.
func (b *sdGPUBackend) Predict(input, timesteps []float32) ([]float32, error) {
	out, err := b.s.Forward(model.Inputs{Input: input, Timesteps: timesteps, Context: b.ctx})
	if err != nil {
		return nil, err
	}
	return out[b.net.Output], nil
}

// SetContext sets the context of the next step or prediction.
func (b *sdGPUBackend) SetContext(c []float32) error { b.ctx = c; return nil }

// sdGPUPredictor is the backend's forward pass as a validation predictor
// (closed with the backend).
type sdGPUPredictor struct{ *sdGPUBackend }

func (sdGPUPredictor) Close() {}

// newSDOptimizer returns the SD backend's AdamW inside the training step:
// on the host overlapped with the backward pass (optimizer_state host), or
// on the device (optimizer_state device). In a data-parallel run both read
// the gradients the ranks averaged on the device (gpu.SDNet's reducer).
func newSDOptimizer(state OptimizerState, log *slog.Logger, be *backend, cfg optim.Config, ops []*optim.Param) (optimizer, error) {
	b := be.sd
	if state == OptimizerHost {
		o, err := optim.New(cfg, ops)
		if err != nil {
			return nil, err
		}
		h, err := gpu.NewSDHostAdamW(b.s, o)
		if err != nil {
			return nil, err
		}
		// the update after the norm (every step once gradients are
		// clipped) runs behind the next forward pass: 1.075x the device
		// optimizer's step instead of 1.22x (bench/RESULTS.md, issue 16)
		if err := h.SetOverlapForward(true); err != nil {
			h.Free()
			return nil, err
		}
		b.inStep = true
		log.Info("AdamW on the host, overlapped with the backward and the next forward pass (optimizer_state host)")
		return &sdHostOptimizer{opt: o, h: h, be: b}, nil
	}
	noDecay := map[string]bool{}
	for _, p := range ops {
		noDecay[p.Name] = p.NoDecay
	}
	d, err := gpu.NewSDDeviceAdamW(b.s, cfg, func(name string) bool { return noDecay[name] })
	if err != nil {
		return nil, err
	}
	b.inStep = true
	log.Info("AdamW state on the GPU (optimizer_state device)", slog.Int64("bytes", d.Bytes()))
	return &deviceOptimizer{opt: d}, nil
}

// sdHostOptimizer is gpu.SDHostAdamW: the update already ran inside the
// training step; step reports it. Its state is optim.AdamW's (the same
// checkpoint format as hostOptimizer's).
type sdHostOptimizer struct {
	opt *optim.AdamW
	h   *gpu.SDHostAdamW
	be  *sdGPUBackend
}

func (h *sdHostOptimizer) step() (optim.Stats, error)         { return h.h.Stats() }
func (h *sdHostOptimizer) setSchedule(s optim.Schedule)       { h.opt.SetSchedule(s) }
func (h *sdHostOptimizer) state() (*checkpoint.File, error)   { return h.opt.State(), nil }
func (h *sdHostOptimizer) syncHost() error                    { return h.h.Wait() }
func (h *sdHostOptimizer) afterUpdate(fn func())              { h.h.AfterUpdate(fn) }
func (h *sdHostOptimizer) loadState(f *checkpoint.File) error { return h.opt.LoadState(f) }
func (h *sdHostOptimizer) close()                             { h.h.Free(); h.be.inStep = false }
