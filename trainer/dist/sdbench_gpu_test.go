//go:build gpu

package dist

import (
	"os"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// The benchmark's full-size net (issue 16's configuration): the SD-1.5
// inpainting UNet inflated to the pseudo-3D layout (1.1 G parameters,
// 241 M temporal ones trainable), random weights, clips of T = 25 frames
// of 64x64x4 latents, trainer/gpu's SD executor at PIPELINE_SD_PRECISION
// (tf32 by default; fp32, bf16, fp16), each rank on the GPU its LOCAL_RANK
// names.
func init() {
	newGPUBench = func(t *testing.T) benchSpec {
		if ok, why := cuda.Available(); !ok {
			t.Skip("no usable GPU: " + why)
		}
		net, err := model.DescribeUNet(model.SD15UNet(9), model.UNetOptions{Pseudo3D: true})
		if err != nil {
			t.Fatal(err)
		}
		p, err := model.NewNetParams(net, 1)
		if err != nil {
			t.Fatal(err)
		}
		prec := gpu.TF32
		if v := os.Getenv(benchPrecisionEnv); v != "" {
			if prec, err = gpu.ParsePrecision(v); err != nil {
				t.Fatal(err)
			}
		}
		tf32 := prec != gpu.FP32
		// TF32 and half products, and cuDNN's per-process algorithm
		// choice, differ between runs by about their rounding
		tol := 1e-4
		if tf32 {
			tol = 2e-2
		}
		desc := "SD-1.5 inpainting UNet pseudo-3D, T=25, 64x64, " + string(prec)
		return benchSpec{net: net, params: p, T: 25, C: 4, H: 64, W: 64, Tokens: model.ContextTokens, D: 768, tol: tol, describe: desc,
			open: func(s benchSpec, ordinal, B int) (benchNet, error) {
				dev, err := cuda.Open(ordinal, cuda.Options{TF32: tf32})
				if err != nil {
					return nil, err
				}
				sd, err := gpu.NewSDNet(dev, s.net, s.params, B, s.T, s.H, s.W,
					gpu.SDOptions{Trainable: func(q model.ParamSpec) bool { return q.Temporal }, Precision: prec})
				if err != nil {
					dev.Close()
					return nil, err
				}
				return &gpuBenchNet{dev: dev, s: sd}, nil
			}}
	}
}

type gpuBenchNet struct {
	dev *cuda.Device
	s   *gpu.SDNet
	mem *DeviceMemory
	dr  *DeviceReducer
}

func (g *gpuBenchNet) trainable() []*model.Param { return g.s.Trainable() }

func (g *gpuBenchNet) memory() (Memory, error) {
	if g.mem == nil {
		m, err := NewDeviceMemory(g.dev)
		if err != nil {
			return nil, err
		}
		g.mem = m
	}
	return g.mem, nil
}

// setReducer feeds r from the SD executor's backward pass (nil: none).
func (g *gpuBenchNet) setReducer(r *Reducer) error {
	if r == nil {
		err := g.s.SetGradReducer(nil)
		if g.dr != nil {
			g.dr.Close()
			g.dr = nil
		}
		return err
	}
	dr, err := NewDeviceReducer(r, g.mem)
	if err != nil {
		return err
	}
	g.dr = dr
	return g.s.SetGradReducer(dr)
}

func (g *gpuBenchNet) step(in model.Inputs, target []float32) (float32, error) {
	return g.s.TrainStep(in, target)
}

func (g *gpuBenchNet) grads() ([][]float32, error) { return g.s.Grads() }
func (g *gpuBenchNet) upload() error               { return g.s.UploadTrainable() }

func (g *gpuBenchNet) close() {
	g.s.Close()
	if g.mem != nil {
		g.mem.Close()
	}
	g.dev.Close()
}
