package trainer

import (
	"fmt"
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// backend is what a session trains through: the Gorgonia CPU graph
// (model.BuildTrain), or with Common.Device "cuda" the GPU step of
// trainer/gpu, which has the same contract on the same batch shape: the
// same trainable parameters in the same order, Step/Grad, and a forward-only
// Predict for validation. With the GPU, weights written on the host (the
// optimizer's update, a restored checkpoint, the baseline's temporary
// re-initialisation) are copied to the device by weightsChanged.
type backend struct {
	cpu *model.TrainGraph
	gpu *gpu.Step
	// sd is the SD family's GPU executor (backend_sdgpu.go).
	sd *sdGPUBackend
}

// backendOptions are what a backend is built from besides the net.
type backendOptions struct {
	// Device is DeviceCPU or DeviceCUDA (resolved); TF32 as in Common.
	Device Device
	TF32   bool
	// Ordinal is the GPU (a data-parallel rank's).
	Ordinal int
	Log     *slog.Logger
	// Net, when set, is a described net to train instead of the pixel
	// model (the SD family; CPU only so far).
	Net *model.Net
	// SD are the SD executor's options for Net on the GPU (precision,
	// checkpointing); the backend sets Trainable.
	SD gpu.SDOptions
}

// trainShape is a training batch as the loader reads it: B windows of T
// frames of R x R (Video: clips; else frame pairs, condition and target,
// that the net sees as one frame).
type trainShape struct {
	Video   bool
	B, T, R int
}

// netT is the frame count of the net's input.
func (sh trainShape) netT() int {
	if sh.Video {
		return sh.T
	}
	return 1
}

func newBackend(o backendOptions, p *model.Params, sh trainShape) (*backend, error) {
	if o.Net != nil {
		return newNetBackend(o, p, sh)
	}
	switch o.Device {
	case "", DeviceCPU:
		g, err := model.BuildTrain(p, sh.Video, sh.B, sh.netT(), sh.R, sh.R)
		if err != nil {
			return nil, err
		}
		return &backend{cpu: g}, nil
	case DeviceCUDA:
		s, err := gpu.NewStep(p, sh.Video, sh.B, sh.netT(), sh.R, sh.R, gpu.Options{Ordinal: o.Ordinal, TF32: o.TF32, Logger: o.Log})
		if err != nil {
			return nil, err
		}
		o.Log.Info("training on the GPU", slog.String("device", s.Device().String()), slog.Bool("tf32", o.TF32))
		return &backend{gpu: s}, nil
	}
	return nil, fmt.Errorf("device %q: want cpu or cuda", string(o.Device))
}

// trainable lists the parameters gradients are taken for, in Params order.
func (b *backend) trainable() []*model.Param {
	if b.sd != nil {
		return b.sd.s.Trainable()
	}
	if b.gpu != nil {
		return b.gpu.Trainable()
	}
	return b.cpu.Trainable
}

// skip is the number of leading frames per clip the loss ignores.
func (b *backend) skip() int {
	if b.sd != nil {
		return b.sd.net.LossSkip
	}
	if b.gpu != nil {
		return b.gpu.LossSkip()
	}
	return b.cpu.Skip
}

func (b *backend) step(input, timesteps, target []float32) (float32, error) {
	if b.sd != nil {
		return b.sd.step(input, timesteps, target)
	}
	if b.gpu != nil {
		return b.gpu.Step(input, timesteps, target)
	}
	return b.cpu.Step(input, timesteps, target)
}

// grads returns the gradients of the last step, in trainable order.
func (b *backend) grads() [][]float32 {
	if b.sd != nil {
		return b.sd.grads
	}
	if b.gpu != nil {
		return b.gpu.Grads()
	}
	out := make([][]float32, len(b.cpu.Grads))
	for i := range out {
		out[i] = b.cpu.Grad(i)
	}
	return out
}

// weightsChanged copies host weights to the device (GPU only).
func (b *backend) weightsChanged() error {
	if b.sd != nil {
		return b.sd.s.UploadTrainable()
	}
	if b.gpu != nil {
		return b.gpu.UploadWeights()
	}
	return nil
}

// predictor runs the net forward on a batch of the training shape.
type predictor interface {
	Predict(input, timesteps []float32) ([]float32, error)
	Close()
}

type gpuPredictor struct{ s *gpu.Step }

func (g gpuPredictor) Predict(input, timesteps []float32) ([]float32, error) {
	return g.s.Predict(input, timesteps)
}
func (gpuPredictor) Close() {}

// predictor returns a forward pass for validation batches of shape
// (B, T, H, W): the GPU step itself (same shape as training), or a CPU graph.
func (b *backend) predictor(p *model.Params, video bool, B, T, H, W int) (predictor, error) {
	if b.sd != nil {
		return sdGPUPredictor{b.sd}, nil
	}
	if b.gpu != nil {
		return gpuPredictor{b.gpu}, nil
	}
	if b.cpu != nil && b.cpu.Net.Context >= 0 {
		return model.BuildNetForward(b.cpu.Net, p, B, T, H, W)
	}
	return model.BuildForward(p, video, B, T, H, W)
}

func (b *backend) close() {
	if b == nil {
		return
	}
	if b.sd != nil {
		b.sd.close()
	}
	if b.gpu != nil {
		b.gpu.Close()
	}
	if b.cpu != nil {
		b.cpu.Close()
	}
}

// gpuOwnedPredictor is a forward pass on a GPU step it closes.
type gpuOwnedPredictor struct{ gpuPredictor }

func (g gpuOwnedPredictor) Close() { g.s.Close() }

// samplePredictor returns the video model's forward pass for one clip of
// o.Frames frames of res x res, on the device o.Device names.
func samplePredictor(p *model.Params, o SampleOptions, res int) (predictor, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dev, err := o.Device.resolve(log)
	if err != nil {
		return nil, err
	}
	switch dev {
	case DeviceCPU:
		return model.BuildForward(p, true, 1, o.Frames, res, res)
	case DeviceCUDA:
		s, err := gpu.NewStep(p, true, 1, o.Frames, res, res, gpu.Options{TF32: o.TF32, Logger: log})
		if err != nil {
			return nil, err
		}
		return gpuOwnedPredictor{gpuPredictor{s}}, nil
	}
	return nil, fmt.Errorf("device %q: want cpu or cuda", string(dev))
}
