package trainer

import (
	"fmt"
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// sdGPUBackend trains a described net (the SD family's video UNet) with
// trainer/gpu's SD executor: weights resident on the device, gradients of
// the temporal parameters only, downloaded after each step for AdamW on
// the host, the updated weights uploaded back.
type sdGPUBackend struct {
	dev   *cuda.Device
	s     *gpu.SDNet
	net   *model.Net
	ctx   []float32
	grads [][]float32
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
	o.Log.Info("training on the GPU", slog.String("device", dev.String()), slog.Bool("tf32", o.TF32), slog.String("executor", "sd"))
	return &sdGPUBackend{dev: dev, s: s, net: o.Net}, nil
}

func (b *sdGPUBackend) step(input, timesteps, target []float32) (float32, error) {
	loss, err := b.s.TrainStep(model.Inputs{Input: input, Timesteps: timesteps, Context: b.ctx}, target)
	if err != nil {
		return 0, err
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

func errNoSDDeviceOptimizer() error {
	return fmt.Errorf("optimizer_state device is not available for the SD family; use optimizer_state host")
}
