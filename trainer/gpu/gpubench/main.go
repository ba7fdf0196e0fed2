// Command gpubench times the GPU training step of trainer/gpu (forward,
// backward, gradient copies, host or device AdamW, weight upload) and
// prints one JSON line of results; with -spec it writes the network
// description bench/torch_reference.py rebuilds the same model from.
// `gpubench e2e` runs pretrain, train and sample on the GPU from a shards
// folder (e2e.go). bench/gpu_train.sh drives it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

type result struct {
	Impl        string   `json:"impl"`
	Device      string   `json:"device"`
	Precision   string   `json:"precision"`
	Optimizer   string   `json:"optimizer"`
	Batch       int      `json:"batch"`
	Frames      int      `json:"frames"`
	Res         int      `json:"res"`
	Params      int      `json:"params"`
	Trainable   int      `json:"trainable"`
	StepMS      float64  `json:"step_ms_median"`
	StepMinMS   float64  `json:"step_ms_min"`
	SamplesPerS float64  `json:"samples_per_s"`
	OptimMS     float64  `json:"optim_ms_median"`
	OptimFrac   float64  `json:"optim_fraction"`
	UploadMS    float64  `json:"weight_upload_ms_median"`
	GPUMS       float64  `json:"gpu_ms_median"`
	CUDNN       bool     `json:"cudnn"`
	CUDNNCalls  int64    `json:"cudnn_calls"`
	Modules     []string `json:"modules"` // kernel modules and where their images came from
	// with -profile: gradient D2H copies, the part under the backward pass, the tail after it
	GradCopyMS        float64 `json:"grad_copy_ms,omitempty"`
	GradCopyOverlapMS float64 `json:"grad_copy_overlap_ms,omitempty"`
	GradCopyTailMS    float64 `json:"grad_copy_tail_ms,omitempty"`
	PeakMiB           float64 `json:"peak_alloc_mib"`
	ReservedMiB       float64 `json:"reserved_mib"`
	DeviceUsedMiB     float64 `json:"device_used_mib"`
	OptimDeviceMiB    float64 `json:"optimizer_device_mib"`
	FinalLoss         float64 `json:"final_loss"`
}

func median(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2]) / 1e6
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "e2e" {
		e2e(os.Args[2:])
		return
	}
	preset := flag.String("model", "timelapse", "model preset")
	B := flag.Int("batch", 4, "clips per step")
	T := flag.Int("frames", 25, "frames per clip")
	res := flag.Int("res", 64, "frame side")
	steps := flag.Int("steps", 50, "timed steps")
	warm := flag.Int("warmup", 10, "untimed steps first")
	tf32 := flag.Bool("tf32", false, "TF32 matrix products")
	optState := flag.String("optimizer", "host", "optimizer state: host or device")
	spec := flag.String("spec", "", "write the network description JSON here and exit")
	profile := flag.String("profile", "", "write a per-layer-kind GPU time table (markdown) here; also times the gradient copies against the backward pass")
	flag.Parse()
	log.SetFlags(0)

	cfg, err := model.Preset(*preset)
	if err != nil {
		log.Fatal(err)
	}
	if *spec != "" {
		s, err := gpu.Spec(cfg, true, *B, *T, *res, *res)
		if err != nil {
			log.Fatal(err)
		}
		f, err := os.Create(*spec)
		if err != nil {
			log.Fatal(err)
		}
		if err := s.WriteJSON(f); err != nil {
			log.Fatal(err)
		}
		if err := f.Close(); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *optState != "host" && *optState != "device" {
		log.Fatalf("-optimizer %q: want host or device", *optState)
	}
	params, err := model.NewParams(cfg, 1)
	if err != nil {
		log.Fatal(err)
	}
	step, err := gpu.NewStep(params, true, *B, *T, *res, *res, gpu.Options{TF32: *tf32, Profile: *profile != "",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		log.Fatal(err)
	}
	defer step.Close()

	ocfg := optim.DefaultConfig()
	ocfg.LR = 1e-4
	var hostOpt *optim.AdamW
	var devOpt *gpu.DeviceAdamW
	if *optState == "host" {
		var ps []*optim.Param
		for _, q := range step.Trainable() {
			ps = append(ps, &optim.Param{Name: q.Name, Shape: q.Shape, Data: q.Data})
		}
		if hostOpt, err = optim.New(ocfg, ps); err != nil {
			log.Fatal(err)
		}
	} else if devOpt, err = gpu.NewDeviceAdamW(step, ocfg, nil); err != nil {
		log.Fatal(err)
	}

	// a few random batches, rotated
	N := *B * *T
	rng := rand.New(rand.NewPCG(1, 2))
	type batch struct{ in, ts, tg []float32 }
	batches := make([]batch, 3)
	for i := range batches {
		b := batch{make([]float32, N*cfg.InChannels**res**res), make([]float32, N), make([]float32, N*cfg.OutChannels**res**res)}
		for j := range b.in {
			b.in[j] = float32(rng.NormFloat64())
		}
		for j := range b.tg {
			b.tg[j] = float32(rng.NormFloat64())
		}
		for c := 0; c < *B; c++ {
			t := float32(rng.IntN(1000))
			for f := 0; f < *T; f++ {
				b.ts[c**T+f] = t
			}
		}
		batches[i] = b
	}
	var stepT, optT, upT, gpuT, copyT, overlapT, tailT []time.Duration
	var loss float32
	for i := 0; i < *warm+*steps; i++ {
		b := batches[i%len(batches)]
		t0 := time.Now()
		if loss, err = step.Run(b.in, b.ts, b.tg); err != nil {
			log.Fatal(err)
		}
		t1 := time.Now()
		if hostOpt != nil {
			if _, err := hostOpt.Step(step.Grads()); err != nil {
				log.Fatal(err)
			}
		} else if _, err := devOpt.Step(); err != nil {
			log.Fatal(err)
		}
		t2 := time.Now()
		if hostOpt != nil {
			if err := step.UploadWeights(); err != nil {
				log.Fatal(err)
			}
		} else if err := step.Device().Sync(); err != nil {
			log.Fatal(err)
		}
		t3 := time.Now()
		if i == *warm-1 {
			step.Device().ResetPeak()
			step.ResetProfile()
		}
		if i >= *warm {
			stepT = append(stepT, t3.Sub(t0))
			optT = append(optT, t2.Sub(t1))
			upT = append(upT, t3.Sub(t2))
			tm := step.Timing()
			gpuT = append(gpuT, tm.GPU)
			copyT, overlapT, tailT = append(copyT, tm.GradCopy), append(overlapT, tm.GradCopyOverlap), append(tailT, tm.GradCopyTail)
		}
	}
	ms := step.MemStats()
	free, total, _ := step.Device().MemInfo()
	total0, temporal := params.Count()
	r := result{Impl: "go", Device: step.Device().Name(), Precision: map[bool]string{false: "fp32", true: "tf32"}[*tf32],
		Optimizer: *optState, Batch: *B, Frames: *T, Res: *res, Params: total0, Trainable: temporal,
		StepMS: median(stepT), StepMinMS: float64(slices.Min(stepT)) / 1e6, OptimMS: median(optT), UploadMS: median(upT),
		PeakMiB: float64(ms.Peak) / (1 << 20), ReservedMiB: float64(ms.Reserved) / (1 << 20),
		DeviceUsedMiB: float64(total-free) / (1 << 20), FinalLoss: float64(loss)}
	r.SamplesPerS = float64(*B) / (r.StepMS / 1e3)
	r.GPUMS = median(gpuT)
	if *profile != "" {
		r.GradCopyMS, r.GradCopyOverlapMS, r.GradCopyTailMS = median(copyT), median(overlapT), median(tailT)
	}
	for _, m := range step.Device().Modules() {
		r.Modules = append(r.Modules, m.Name+": "+string(m.Origin))
	}
	r.CUDNN, r.CUDNNCalls = step.Device().CUDNN()
	r.OptimFrac = r.OptimMS / r.StepMS
	if devOpt != nil {
		r.OptimDeviceMiB = float64(devOpt.Bytes()) / (1 << 20)
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if *profile != "" {
		tab := fmt.Sprintf("%s, %s, batch %d x %d frames, %dx%d: GPU time per step by layer kind (CUDA events, mean of %d steps)\n\n%s",
			r.Device, r.Precision, *B, *T, *res, *res, *steps, gpu.FormatProfile(step.Profile()))
		if err := os.WriteFile(*profile, []byte(tab), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
