package trainer

import (
	"fmt"
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// sdGPU runs the SD family's sampling nets on one GPU with trainer/gpu's
// SD executor (float32): the video UNet's forward pass over the whole
// clip (both guidance halves) and the VAE decoder in batches.
type sdGPU struct {
	dev *cuda.Device
	sdo gpu.SDOptions
}

func openSDGPU(p Precision, log *slog.Logger) (*sdGPU, error) {
	tf32, sdo, err := p.sdGPU()
	if err != nil {
		return nil, err
	}
	dev, err := cuda.Open(0, cuda.Options{TF32: tf32, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("sampling on the GPU", slog.String("device", dev.String()), slog.String("precision", string(p)))
	return &sdGPU{dev: dev, sdo: sdo}, nil
}

func (g *sdGPU) close() { g.dev.Close() }

// unet returns the forward pass of u for (halves, frames) at h x w.
func (g *sdGPU) unet(u *model.UNet) func(halves, frames, h, w int) (sdForward, error) {
	return func(halves, frames, h, w int) (sdForward, error) {
		s, err := gpu.NewSDNet(g.dev, u.Net, u.Params, halves, frames, h, w, g.sdo)
		if err != nil {
			return nil, err
		}
		return &gpuSDForward{s: s, out: u.Net.Output}, nil
	}
}

type gpuSDForward struct {
	s   *gpu.SDNet
	out int
	ctx []float32
}

func (f *gpuSDForward) SetContext(c []float32) error { f.ctx = c; return nil }
func (f *gpuSDForward) Close()                       { f.s.Close() }

func (f *gpuSDForward) Predict(in, ts []float32) ([]float32, error) {
	out, err := f.s.Forward(model.Inputs{Input: in, Timesteps: ts, Context: f.ctx})
	if err != nil {
		return nil, err
	}
	return out[f.out], nil
}

// decoder returns a VAE decode function (n latents of h x w, unscaled, to
// images) on the GPU; one executor per batch size.
func (g *sdGPU) decoder(v *model.VAE, h, w int) (func(lat []float32, n int) ([]float32, error), func(), error) {
	f := v.Config.Downscale()
	nets := map[int]*gpu.SDNet{}
	get := func(n int) (*gpu.SDNet, error) {
		if s := nets[n]; s != nil {
			return s, nil
		}
		s, err := gpu.NewSDNet(g.dev, v.Decoder, v.Params, n, 1, h*f, w*f, g.sdo)
		if err != nil {
			return nil, fmt.Errorf("VAE decoder on the GPU: %w", err)
		}
		nets[n] = s
		return s, nil
	}
	dec := func(lat []float32, n int) ([]float32, error) {
		s, err := get(n)
		if err != nil {
			return nil, err
		}
		out, err := s.Forward(model.Inputs{Input: lat})
		if err != nil {
			return nil, err
		}
		return out[v.Decoder.Output], nil
	}
	closeAll := func() {
		for _, s := range nets {
			s.Close()
		}
	}
	return dec, closeAll, nil
}
