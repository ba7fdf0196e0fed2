//go:build gpu

package gpu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// TestSDStepModesBench measures the full-size SD-1.5 inpainting UNet's
// training step (pseudo-3D, random weights, B=1, T=25, 64x64x4 latents, 9
// input channels) with the optimizer inside the step: with and without
// gradient checkpointing, AdamW on the device (DeviceAdamW) and on the
// host overlapped with backward (SDHostAdamW, default clipping at norm 1
// and unclipped), in TF32 and bf16: wall time of the whole step (training
// step, optimizer, synchronised; median of 3 after a warm-up step), device
// peak (weights included) and optimizer bytes on the device. Set
// PIPELINE_SD_BENCH=1.
func TestSDStepModesBench(t *testing.T) {
	if os.Getenv("PIPELINE_SD_BENCH") != "1" {
		t.Skip("PIPELINE_SD_BENCH=1 runs the full-size benchmark")
	}
	dev := sdDevice(t, true)
	net, err := model.DescribeUNet(model.SD15UNet(9), model.UNetOptions{Pseudo3D: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.NewNetParams(net, 1)
	if err != nil {
		t.Fatal(err)
	}
	const B, T, H, W = 1, 25, 64, 64
	rng := rand.New(rand.NewPCG(1, 2))
	in := model.Inputs{Input: randn(rng, B*T*9*H*W, 1), Timesteps: make([]float32, B*T), Context: randn(rng, B*T*model.ContextTokens*768, 1)}
	for i := range in.Timesteps {
		in.Timesteps[i] = 500
	}
	target := randn(rng, B*T*4*H*W, 1)
	tflop := float64(net.FLOPs(B, T, H, W)+net.BackwardFLOPs(B, T, H, W, func(q *model.Param) bool { return q.Temporal })) / 1e12
	temporal := func(q model.ParamSpec) bool { return q.Temporal }
	type mode struct {
		prec Precision
		ckpt bool
		opt  string // device, host, host noclip, host next (SetOverlapForward)
	}
	var modes []mode
	for _, prec := range []Precision{TF32, BF16} {
		for _, ckpt := range []bool{false, true} {
			if prec == BF16 && !ckpt {
				continue
			}
			for _, opt := range []string{"device", "host"} {
				modes = append(modes, mode{prec, ckpt, opt})
			}
		}
	}
	modes = append(modes, mode{TF32, true, "host noclip"}, mode{BF16, true, "host noclip"}, mode{BF16, true, "host next"})
	// PIPELINE_SD_STEP_MODES=tf32/ckpt/host,... picks some (prec/ckpt|plain/optimizer)
	if sel := os.Getenv("PIPELINE_SD_STEP_MODES"); sel != "" {
		var keep []mode
		for _, m := range modes {
			ck := "plain"
			if m.ckpt {
				ck = "ckpt"
			}
			if slices.Contains(strings.Split(sel, ","), fmt.Sprintf("%s/%s/%s", m.prec, ck, m.opt)) {
				keep = append(keep, m)
			}
		}
		modes = keep
	}
	var rows []string
	for _, m := range modes {
		dev.ResetPeak()
		s, err := NewSDNet(dev, net, p, B, T, H, W, SDOptions{Trainable: temporal, Precision: m.prec, Checkpointing: m.ckpt})
		if err != nil {
			t.Fatal(err)
		}
		cfg := optim.DefaultConfig()
		if m.opt == "host noclip" {
			cfg.ClipNorm = 0
		}
		var ops []*optim.Param
		saved := map[string][]float32{}
		for _, q := range s.Trainable() {
			saved[q.Name] = append([]float32(nil), q.Data...)
			ops = append(ops, &optim.Param{Name: q.Name, Shape: q.Shape, Data: q.Data, NoDecay: len(q.Shape) == 1})
		}
		before := dev.MemStats().InUse
		var da *DeviceAdamW
		if m.opt == "device" {
			if da, err = NewSDDeviceAdamW(s, cfg, func(n string) bool { return len(p.Get(n).Shape) == 1 }); err != nil {
				t.Fatal(err)
			}
		} else {
			o, err := optim.New(cfg, ops)
			if err != nil {
				t.Fatal(err)
			}
			h, err := NewSDHostAdamW(s, o)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.SetOverlapForward(m.opt == "host next"); err != nil {
				t.Fatal(err)
			}
		}
		optBytes := dev.MemStats().InUse - before
		var wall, gpuT []time.Duration
		var hostT []HostStepTiming
		clipped := 0
		for i := 0; i < 4; i++ {
			st := time.Now()
			if _, err := s.TrainStep(in, target); err != nil {
				t.Fatal(err)
			}
			var ost optim.Stats
			if da != nil {
				if ost, err = da.Step(); err == nil {
					err = dev.Sync()
				}
			} else {
				ost, err = s.host.Stats()
			}
			if err != nil {
				t.Fatal(err)
			}
			if ost.Clipped {
				clipped++
			}
			if i > 0 {
				wall = append(wall, time.Since(st))
				gpuT = append(gpuT, s.GPUTime())
				if s.host != nil {
					hostT = append(hostT, s.host.Timing())
				}
			}
		}
		peak := dev.MemStats().Peak
		if da != nil {
			da.Free()
		}
		s.Close()
		// the next mode starts from the same weights
		for _, q := range p.TemporalParams() {
			copy(q.Data, saved[q.Name])
		}
		ck := "no checkpointing"
		if m.ckpt {
			ck = "checkpointing"
		}
		w := median(wall)
		for k, ht := range hostT {
			t.Logf("%s AdamW %s step %d host side: during backward %v (%d of %d buckets deferred), tail %v, wait for uploads %v, after the norm %v (in the background: %v, the forward's wait %v), last upload %v, %d GCs; step %v, GPU %v",
				m.prec, m.opt, k+2, ht.Update, ht.Deferred, ht.Buckets, ht.Tail, ht.WaitUploads, ht.Complete, ht.Background, ht.ForwardWait, ht.LastUpload, ht.GCs, wall[k], gpuT[k])
		}
		t.Logf("%s %s AdamW %s: step %v (GPU compute %v), peak %.2f GiB, optimizer %.2f GiB on the device, %d/4 steps clipped",
			m.prec, ck, m.opt, w, median(gpuT), gib(peak), gib(optBytes), clipped)
		rows = append(rows, fmt.Sprintf("| %s | %s | AdamW %s | %.1f | %.1f | %.2f | %.2f | %d/4 |", m.prec, ck, m.opt,
			float64(w.Microseconds())/1000, tflop/w.Seconds(), gib(peak), gib(optBytes), clipped))
	}
	fmt.Println("| precision | checkpointing | optimizer | step ms | TFLOP/s | peak GiB | optimizer GiB on GPU | clipped |\n|---|---|---|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
}
