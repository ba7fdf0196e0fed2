//go:build gpu

package gpu

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
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
// for strict float32; PIPELINE_SD_BENCH_PREC lists the precisions, default
// "tf32,bf16-chunked,bf16" for the UNet (PIPELINE_SD_BENCH_FP32=0 drops
// tf32); PIPELINE_SD_BENCH_VAE_PREC for the VAE, default "tf32,fp16,bf16"
// (PIPELINE_SD_BENCH_VAE=0: none)).
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
	vaeDef := "tf32,fp16,bf16"
	if os.Getenv("PIPELINE_SD_BENCH_VAE") == "0" {
		vaeDef = "none"
	}
	for _, p := range benchPrecisions(t, "PIPELINE_SD_BENCH_VAE_PREC", vaeDef) {
		rows = append(rows, benchVAE(t, d, prec, p)...)
	}
	fmt.Println("| what | precision | ms | rate | peak GiB |\n|---|---|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// benchVariant is one precision of the benchmark: a Precision, "-nhwc" or
// "-nchw" for the layout of the 16-bit convolutions (default: the package's),
// "-chunked" for the chunked cuBLAS attention instead of the fused one, "-linears" for 16-bit linears only
// (the first bf16 mode: convolutions float32), "-s<k>" for a VAE built for k
// images run over the batch k at a time, "-unfused" for forward passes
// without the fused 16-bit convolution chains (sd_half_fused.go).
type benchVariant struct {
	p                   Precision
	nhwc, nchw, linears bool
	chunked             bool // the chunked cuBLAS attention instead of the fused one
	unfused             bool // no fused 16-bit convolution chains
	t32                 bool // the trainable layers' products float32 (temporal16 off)
	slice               int  // VAE: images per pass (0: the whole batch), as diffusers' enable_slicing
	name                string
}

// set applies the variant's package switches and returns the options'
// precision ("" for the float32 ones: the device decides TF32).
func (v benchVariant) set() Precision {
	convNHWC, halfConvs = (defaultNHWC || v.nhwc) && !v.nchw, !v.linears
	halfFused = defaultHalfFused && !v.unfused
	temporal16 = !v.t32
	if !v.p.Half() {
		return ""
	}
	return v.p
}

// defaultNHWC is the package's layout of the 16-bit convolutions.
var defaultNHWC = convNHWC

// defaultHalfFused is the package's fusion of 16-bit convolution chains.
var defaultHalfFused = halfFused

// benchPrecisions reads a comma-separated list of variants from env.
func benchPrecisions(t *testing.T, env, def string) []benchVariant {
	v := os.Getenv(env)
	if v == "" {
		v = def
	}
	if v == "none" {
		return nil
	}
	var out []benchVariant
	for _, f := range strings.Split(v, ",") {
		parts := strings.Split(f, "-")
		p, err := ParsePrecision(parts[0])
		if err != nil {
			t.Fatalf("%s: variant %q: %v", env, f, err)
		}
		bv := benchVariant{p: p, name: f}
		for _, x := range parts[1:] {
			switch {
			case x == "nhwc":
				bv.nhwc = true
			case x == "nchw":
				bv.nchw = true
			case x == "chunked":
				bv.chunked = true
			case x == "linears":
				bv.linears = true
			case x == "unfused":
				bv.unfused = true
			case x == "t32":
				bv.t32 = true
			case strings.HasPrefix(x, "s"):
				if _, err := fmt.Sscanf(x, "s%d", &bv.slice); err != nil || bv.slice < 1 {
					t.Fatalf("%s: variant %q: bad slice %q", env, f, x)
				}
			default:
				t.Fatalf("%s: variant %q: want a precision with -nhwc, -nchw, -linears, -chunked, -unfused, -t32 or -s<k>", env, f)
			}
		}
		out = append(out, bv)
	}
	return out
}

// benchMode names a variant's mode (float32 ones: the device's prec).
func benchMode(v benchVariant, prec string) string {
	if v.chunked {
		w := v
		w.chunked = false
		return benchMode(w, prec) + ", attention chunked cuBLAS"
	}
	if v.unfused {
		w := v
		w.unfused = false
		return benchMode(w, prec) + ", unfused"
	}
	if v.t32 {
		w := v
		w.t32 = false
		return benchMode(w, prec) + ", temporal float32"
	}
	if v.slice > 0 {
		w := v
		w.slice = 0
		return fmt.Sprintf("%s, %d images per pass", benchMode(w, prec), v.slice)
	}
	switch {
	case !v.p.Half():
		return prec
	case v.linears:
		return fmt.Sprintf("%s linears (+bf16 attention), convs %s", v.p, prec)
	case (defaultNHWC || v.nhwc) && !v.nchw:
		return fmt.Sprintf("%s convs (NHWC) + linears", v.p)
	}
	return fmt.Sprintf("%s convs (NCHW) + linears", v.p)
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
	defer benchVariant{}.set()
	def := "tf32,bf16-chunked,bf16"
	if os.Getenv("PIPELINE_SD_BENCH_FP32") == "0" {
		def = "bf16-chunked,bf16"
	}
	for _, v := range benchPrecisions(t, "PIPELINE_SD_BENCH_PREC", def) {
		mode := benchMode(v, prec)
		pr := v.set()
		dev.ResetPeak()
		s, err := NewSDNet(dev, net, p, B, T, H, W, SDOptions{Trainable: func(q model.ParamSpec) bool { return q.Temporal }, Profile: true, Precision: pr})
		if err != nil {
			t.Fatal(err)
		}
		s.flashOff = v.chunked
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

func benchVAE(t *testing.T, dev *cuda.Device, prec string, v benchVariant) []string {
	mode := benchMode(v, prec)
	pr := v.set()
	defer benchVariant{}.set()
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
		k := N
		if v.slice > 0 && v.slice < N && N%v.slice == 0 {
			k = v.slice
		}
		s, err := NewSDNet(dev, c.net, p, k, 1, H, W, SDOptions{Precision: pr, Profile: true})
		if err != nil {
			t.Fatal(err)
		}
		var gpuT []time.Duration
		per := len(c.in) / N * k
		for i := 0; i < 4; i++ {
			var g time.Duration
			for j := 0; j < N/k; j++ {
				if _, err := s.Forward(model.Inputs{Input: c.in[j*per : (j+1)*per]}); err != nil {
					t.Fatal(err)
				}
				g += s.GPUTime()
			}
			if i > 0 {
				gpuT = append(gpuT, g)
			} else {
				// after the warm-up pass (cuDNN's algorithm search), as
				// make_golden.py's time_steps resets torch's peak
				s.ResetProfile()
				dev.ResetPeak()
			}
		}
		g := median(gpuT)
		peak := s.MemStats().Peak
		prof := s.Profile()
		s.Close()
		fmt.Printf("%s profile by layer kind, %s\n", c.name, mode)
		fmt.Print(FormatProfile(prof))
		rows = append(rows, fmt.Sprintf("| %s | %s | %.1f | %.1f frames/s | %.2f |", c.name, mode, float64(g.Microseconds())/1000, N/g.Seconds(), gib(peak)))
	}
	return rows
}
