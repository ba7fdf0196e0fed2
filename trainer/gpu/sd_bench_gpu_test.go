//go:build gpu

package gpu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// TestSDFullSizeBench measures the full-size SD-1.5 inpainting UNet,
// inflated (pseudo-3D, random weights), training step at B=1, T=25 on
// 64x64x4 latents (9 input channels), and the SD VAE's encode and decode
// rates at 512x512 batch 8: time, peak device memory and a profile by
// layer kind. Set PIPELINE_SD_BENCH=1 (minutes of GPU time; PIPELINE_SD_TF32=0
// for strict float32).
func TestSDFullSizeBench(t *testing.T) {
	if os.Getenv("PIPELINE_SD_BENCH") != "1" {
		t.Skip("PIPELINE_SD_BENCH=1 runs the full-size benchmark")
	}
	tf32 := os.Getenv("PIPELINE_SD_TF32") != "0"
	d := sdDevice(t, tf32)
	prec := "float32"
	if tf32 {
		prec = "tf32"
	}
	rows := []string{}
	if os.Getenv("PIPELINE_SD_BENCH_UNET") != "0" {
		rows = append(rows, benchUNet(t, d, prec)...)
	}
	if os.Getenv("PIPELINE_SD_BENCH_VAE") != "0" {
		rows = append(rows, benchVAE(t, d, prec, false)...)
		rows = append(rows, benchVAE(t, d, prec, true)...)
	}
	fmt.Println("| what | precision | ms | rate | peak GiB |\n|---|---|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

func gib(b int64) float64 { return float64(b) / (1 << 30) }

func median(xs []time.Duration) time.Duration {
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func benchUNet(t *testing.T, dev *cuda.Device, prec string) []string {
	t0 := time.Now()
	net, err := model.DescribeUNet(model.SD15UNet(9), model.UNetOptions{Pseudo3D: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.NewNetParams(net, 1)
	if err != nil {
		t.Fatal(err)
	}
	total, temporal := net.ParamCount()
	t.Logf("SD-1.5 inpainting UNet, pseudo-3D: %d parameters, %d temporal; init %v", total, temporal, time.Since(t0))
	const B, T, H, W = 1, 25, 64, 64
	rng := rand.New(rand.NewPCG(1, 2))
	in := model.Inputs{
		Input:     randn(rng, B*T*9*H*W, 1),
		Timesteps: make([]float32, B*T),
		Context:   randn(rng, B*T*model.ContextTokens*768, 1),
	}
	for i := range in.Timesteps {
		in.Timesteps[i] = 500
	}
	target := randn(rng, B*T*4*H*W, 1)
	fwd := net.FLOPs(B, T, H, W)
	bwd := net.BackwardFLOPs(B, T, H, W, func(q *model.Param) bool { return q.Temporal })
	tflop := float64(fwd+bwd) / 1e12
	t.Logf("FLOPs per step (description): forward %.2f T + backward %.2f T = %.2f TFLOP", float64(fwd)/1e12, float64(bwd)/1e12, tflop)
	var rows []string
	// modes: float32/TF32 (PIPELINE_SD_BENCH_FP32=0 skips it), bf16 with
	// the chunked cuBLAS attention, bf16 with the fused attention
	for _, m := range []struct{ bf16, chunked bool }{{false, false}, {true, true}, {true, false}} {
		bf16 := m.bf16
		mode := prec
		switch {
		case !bf16 && os.Getenv("PIPELINE_SD_BENCH_FP32") == "0":
			continue
		case m.chunked:
			mode = "bf16, attention chunked cuBLAS"
		case bf16:
			mode = "bf16, attention flash"
		}
		dev.ResetPeak()
		s, err := NewSDNet(dev, net, p, B, T, H, W, SDOptions{Trainable: func(q model.ParamSpec) bool { return q.Temporal }, Profile: true, BF16: bf16})
		if err != nil {
			t.Fatal(err)
		}
		s.flashOff = m.chunked
		weightsGiB := gib(dev.MemStats().InUse)
		var wall, gpuT []time.Duration
		var losses []float32
		for i := 0; i < 4; i++ {
			st := time.Now()
			loss, err := s.TrainStep(in, target)
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, loss)
			if i == 0 {
				s.ResetProfile()
				continue
			}
			wall = append(wall, time.Since(st))
			gpuT = append(gpuT, s.GPUTime())
		}
		ms := s.MemStats()
		g := median(gpuT)
		t.Logf("UNet step %s: wall %v, GPU %v (median of %d), weights %.2f GiB, peak %.2f GiB, losses %v, %.1f TFLOP/s",
			mode, median(wall), g, len(gpuT), weightsGiB, gib(ms.Peak), losses, tflop/g.Seconds())
		fmt.Printf("UNet step profile by layer kind, %s (profiled steps, events on)\n", mode)
		fmt.Print(FormatProfile(s.Profile()))
		s.Close()
		rows = append(rows, fmt.Sprintf("| UNet step B=1 T=25 64x64, no checkpointing | %s | %.1f | %.1f TFLOP/s | %.2f |",
			mode, float64(g.Microseconds())/1000, tflop/g.Seconds(), gib(ms.Peak)))
	}
	return rows
}

func benchVAE(t *testing.T, dev *cuda.Device, prec string, bf16 bool) []string {
	cfg := model.VAEConfig{InChannels: 3, OutChannels: 3, BlockOutChannels: []int{128, 256, 512, 512}, LayersPerBlock: 2,
		LatentChannels: 4, NormGroups: 32, ScalingFactor: 0.18215, UseQuantConv: true, UsePostQuantConv: true}
	enc, err := model.DescribeVAEEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := model.DescribeVAEDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const N, H, W = 8, 512, 512
	var rows []string
	for _, c := range []struct {
		name string
		net  *model.Net
		in   []float32
	}{
		{"VAE encode 8x512x512", enc, randn(rng, N*3*H*W, 0.5)},
		{"VAE decode 8x64x64 -> 512x512", dec, randn(rng, N*4*(H/8)*(W/8), 1)},
	} {
		p, err := model.NewNetParams(c.net, 3)
		if err != nil {
			t.Fatal(err)
		}
		dev.ResetPeak()
		s, err := NewSDNet(dev, c.net, p, N, 1, H, W, SDOptions{BF16: bf16, Profile: true})
		if err != nil {
			t.Fatal(err)
		}
		var gpuT []time.Duration
		for i := 0; i < 4; i++ {
			if _, err := s.Forward(model.Inputs{Input: c.in}); err != nil {
				t.Fatal(err)
			}
			if i > 0 {
				gpuT = append(gpuT, s.GPUTime())
			} else {
				s.ResetProfile()
			}
		}
		g := median(gpuT)
		peak := s.MemStats().Peak
		prof := s.Profile()
		s.Close()
		mode := prec
		if bf16 {
			mode = "bf16 attention, rest " + prec
		}
		fmt.Printf("%s profile by layer kind, %s\n", c.name, mode)
		fmt.Print(FormatProfile(prof))
		rows = append(rows, fmt.Sprintf("| %s | %s | %.1f | %.1f frames/s | %.2f |", c.name, mode, float64(g.Microseconds())/1000, N/g.Seconds(), gib(peak)))
	}
	return rows
}
