//go:build gpu

package gpu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
	memplan "github.com/timelapse-ml/pipeline/trainer/plan"
)

// TestSDStepModesBench measures the full-size SD-1.5 inpainting UNet's
// training step (pseudo-3D, random weights, B=1, T=25, 64x64x4 latents, 9
// input channels) with the optimizer inside the step: with and without
// gradient checkpointing, AdamW on the device (DeviceAdamW) and on the
// host overlapped with backward (SDHostAdamW, default clipping at norm 1
// and unclipped), in TF32 and bf16: wall time of the whole step (training
// step, optimizer, synchronised; median of 3 after a warm-up step), device
// peak (weights included) and optimizer bytes on the device. Set
// PIPELINE_SD_BENCH=1. It prints the steady-state peak's breakdown from
// the allocator beside trainer/plan's estimate of the same step.
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
		ck   string // plain (16-bit saved values in the half precisions), plain-f32, plain-all; ckpt (the default: 16-bit boundaries, kept attention); ckpt-f32, ckpt-nokeep, ckpt-keepN (attention of >= 2^N queries x keys kept)
		opt  string // device; host (as train_sd: SetOverlapForward), host noclip, host nonext (the update after the norm ends the step)
		prof bool   // profiled (a mode named with "+prof")
	}
	var modes []mode
	for _, prec := range []Precision{TF32, BF16, FP16} {
		for _, ck := range []string{"plain", "plain-f32", "plain-all", "ckpt", "ckpt-f32", "ckpt-nokeep", "ckpt-keep20", "ckpt-keep16", "ckpt-keep0"} {
			if !prec.Half() && ck != "plain" && ck != "ckpt" {
				continue
			}
			for _, opt := range []string{"device", "host"} {
				if prec.Half() && strings.HasPrefix(ck, "plain-") && opt != "device" {
					continue
				}
				modes = append(modes, mode{prec: prec, ck: ck, opt: opt})
			}
		}
	}
	modes = append(modes, mode{prec: TF32, ck: "ckpt", opt: "host noclip"}, mode{prec: BF16, ck: "ckpt", opt: "host noclip"}, mode{prec: BF16, ck: "ckpt", opt: "host nonext"})
	// PIPELINE_SD_STEP_MODES=bf16/ckpt/device,... picks some
	// (prec/checkpointing/optimizer), in that order; a name ending in
	// "+prof" runs the mode again with PIPELINE_SD_STEP_PROFILE's profile
	if sel := os.Getenv("PIPELINE_SD_STEP_MODES"); sel != "" {
		var keep []mode
		for _, name := range strings.Split(sel, ",") {
			base, prof := strings.CutSuffix(name, "+prof")
			i := slices.IndexFunc(modes, func(m mode) bool { return fmt.Sprintf("%s/%s/%s", m.prec, m.ck, m.opt) == base })
			if i < 0 {
				t.Fatalf("PIPELINE_SD_STEP_MODES: no mode %q", name)
			}
			m := modes[i]
			m.prof = prof
			keep = append(keep, m)
		}
		modes = keep
	}
	for i := range modes {
		modes[i].prof = modes[i].prof || os.Getenv("PIPELINE_SD_STEP_PROFILE") == "1"
	}
	var rows, mem []string
	for _, m := range modes {
		dev.ResetPeak()
		// profiled (PIPELINE_SD_STEP_PROFILE=1, or a "+prof" mode): device
		// time by layer kind and pass (events around every layer, so the
		// wall time grows a little)
		o := SDOptions{Trainable: temporal, Precision: m.prec, Checkpointing: !strings.HasPrefix(m.ck, "plain"), Profile: m.prof}
		switch m.ck {
		case "plain-f32": // saved values float32 (sd_saved.go)
			o.SavedPackMin = -1
		case "plain-all": // every saved value of 1M elements packed
			o.SavedPackMin = 1 << 20
		case "ckpt-f32":
			o.CheckpointFloat32, o.CheckpointKeepAttention = true, -1
		case "ckpt-nokeep":
			o.CheckpointKeepAttention = -1
		case "ckpt-keep20", "ckpt-keep16", "ckpt-keep0": // the attentions of at least 2^N queries x keys kept (the plan column assumes the default)
			n, _ := strconv.Atoi(strings.TrimPrefix(m.ck, "ckpt-keep"))
			o.CheckpointKeepAttention = 1 << n
		}
		s, err := NewSDNet(dev, net, p, B, T, H, W, o)
		if err != nil {
			t.Fatal(err)
		}
		bufs := s.bufferBytes()
		netBytes := dev.MemStats().InUse
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
			if err := h.SetOverlapForward(m.opt != "host nonext"); err != nil {
				t.Fatal(err)
			}
		}
		optBytes := dev.MemStats().InUse - before
		var wall, gpuT []time.Duration
		var hostT []HostStepTiming
		clipped := 0
		var first int64
		for i := 0; i < 4; i++ {
			if i == 1 {
				// then the steady-state peak, as PyTorch's bench takes it
				// (after its warm-up steps): the libraries' algorithm
				// searches are done
				first = dev.MemStats().Peak
				dev.ResetPeak()
				s.ResetProfile()
			}
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
		if o.Profile {
			fmt.Printf("SD step profile by layer kind and pass, %s %s AdamW %s (3 steps after a warm-up, optimizer not included)\n", m.prec, m.ck, m.opt)
			fmt.Print(FormatProfile(s.Profile()))
		}
		st := dev.MemStats()
		steady := st.Peak
		peak := max(steady, first)
		e, err := memplan.Plan(s.planJob(m.opt == "device"))
		if err != nil {
			t.Fatal(err)
		}
		if da != nil {
			da.Free()
		}
		s.Close()
		// the next mode starts from the same weights
		for _, q := range p.TemporalParams() {
			copy(q.Data, saved[q.Name])
		}
		w := median(wall)
		for k, ht := range hostT {
			t.Logf("%s AdamW %s step %d host side: during backward %v (%d of %d buckets deferred), tail %v, wait for uploads %v, after the norm %v (in the background: %v, the forward's wait %v), last upload %v, %d GCs; step %v, GPU %v",
				m.prec, m.opt, k+2, ht.Update, ht.Deferred, ht.Buckets, ht.Tail, ht.WaitUploads, ht.Complete, ht.Background, ht.ForwardWait, ht.LastUpload, ht.GCs, wall[k], gpuT[k])
		}
		steadyPlan := e.Total - e.Workspace + blasWorkspace
		t.Logf("%s %s AdamW %s: step %v (GPU compute %v), peak %.2f GiB (steady state %.2f), optimizer %.2f GiB on the device, %d/4 steps clipped; plan %.2f GiB (steady state %.2f)",
			m.prec, m.ck, m.opt, w, median(gpuT), gib(peak), gib(steady), gib(optBytes), clipped, gib(e.Total), gib(steadyPlan))
		label := m.opt
		if m.prof {
			label += " (profiled)"
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | AdamW %s | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %d/4 |", m.prec, m.ck, label,
			float64(w.Microseconds())/1000, tflop/w.Seconds(), gib(steady), gib(peak), gib(steadyPlan), float64(steadyPlan)/float64(steady), gib(optBytes), clipped))
		// where the steady-state peak goes: the executor's own buffers, the
		// optimizer, and the rest of the peak (values, value gradients,
		// saved results, packed boundaries, scratch) beside the plan's
		mem = append(mem, fmt.Sprintf("| %s %s AdamW %s | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f | %.2f / %.2f | %.2f | %.2f |",
			m.prec, m.ck, m.opt, gib(bufs.frozen), gib(e.FrozenWeights), gib(bufs.trainable), gib(e.TrainableWeights),
			gib(bufs.grads), gib(e.ParamGrads), gib(optBytes), gib(e.Optimizer), gib(netBytes-bufs.total()),
			gib(steady-netBytes-optBytes), gib(e.Activations+e.ActivationGrads+e.Attention), gib(st.Reserved), gib(steady)))
	}
	fmt.Println("| precision | checkpointing | optimizer | step ms | TFLOP/s | peak GiB (steady) | peak GiB (with warm-up) | plan GiB (steady) | plan / peak | optimizer GiB on GPU | clipped |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
	fmt.Println("\nsteady-state peak, GiB, measured / plan: | mode | frozen weights | trainable masters | parameter grads | optimizer | other buffers | step's values, grads, scratch | reserved | peak |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range mem {
		fmt.Println(r)
	}
}

// blasWorkspace is cuBLAS's workspace, held for the device's life (in the
// steady-state peak; cuDNN's search scratch is not).
const blasWorkspace = 32 << 20

// planJob is the trainer/plan job of this executor's training step: its
// precisions, checkpointing schedule (16-bit boundaries, kept fused
// attention), attention budget and library workspace.
func (s *SDNet) planJob(optimizerOnDevice bool) memplan.Job {
	j := memplan.Job{Net: s.p.net, B: s.p.B, T: s.p.T, H: s.p.H, W: s.p.W, Train: true, WeightBytes: 4, ActBytes: 4,
		Trainable: func(q model.ParamSpec) bool { return s.p.trainable[q.Name] }, Checkpoint: s.ck != nil,
		OptimizerOnDevice: optimizerOnDevice, AttentionBudget: 4 * int64(s.attnBudget), Workspace: cuda.LibraryWorkspaceBytes()}
	if s.prec.Half() {
		j.WeightBytes = 2
	}
	j.FusedAttention = s.prec.Half() && !s.flashOff && !flashTemporal
	if s.ck == nil && s.prec.Half() {
		s.planSaved()
		if s.sv != nil {
			j.SavedBytes, j.SavedDirect = s.sv.bytes, s.sv.isDirect
		}
	}
	if s.ck == nil {
		j.FusedNormSiLU = SDFusedNormSiLU(s.p.net)
	}
	if s.ck != nil {
		if s.ck.packed {
			j.CheckpointBytes = 2
		}
		j.KeepAttention = s.ck.keepMin
	}
	return j
}
