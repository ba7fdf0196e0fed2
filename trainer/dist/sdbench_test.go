package dist

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/dist/disttest"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// The data-parallel SD step benchmark (bench/dist_gpu.sh runs it on a
// machine with several GPUs; TestDistSDBenchOnCPU runs it here on the tiny
// UNet against the stand-in libnccl). One process of it is either the
// reference (mode ref: one process, world size 1, no NCCL, each step's
// global batch as micro-batches of the ranks' size whose gradients are
// averaged on the host) or a rank of a data-parallel job (mode dist: the
// launcher's variables; parameters broadcast from rank 0, its slice of the
// global batch, the gradients averaged in buckets as the backward pass
// produces them). Both take K host AdamW steps from the same random
// weights on the same seeded clips; the reference writes its step-1
// gradients and final temporal weights under PIPELINE_DIST_BENCH_DIR and
// rank 0 of the job compares its own with them. Each prints one line
// "DISTBENCH key=value ...", which the script turns into a table.
const (
	benchEnv          = "PIPELINE_DIST_BENCH"        // "cpu" (tiny UNet) or "gpu" (full size; a gpu-tagged binary)
	benchModeEnv      = "PIPELINE_DIST_BENCH_MODE"   // "ref" or "dist"
	benchGlobalEnv    = "PIPELINE_DIST_BENCH_GLOBAL" // the global batch (default: the world size)
	benchPerEnv       = "PIPELINE_DIST_BENCH_PER"    // the reference's micro-batch, the ranks' batch (default 1)
	benchStepsEnv     = "PIPELINE_DIST_BENCH_STEPS"  // optimizer steps K (default 5; the first is not timed)
	benchDirEnv       = "PIPELINE_DIST_BENCH_DIR"    // the reference's files
	benchPrecisionEnv = "PIPELINE_SD_PRECISION"      // the SD executor's precision: tf32 (default), fp32, bf16, fp16
)

// benchNet is one rank's training net: fwd+bwd on its batch (the
// gradients averaged over the ranks once a reducer is set), the gradients
// on the host, the trainable weights re-uploaded after the host update.
type benchNet interface {
	trainable() []*model.Param
	setReducer(r *Reducer) error
	memory() (Memory, error)
	step(in model.Inputs, target []float32) (float32, error)
	grads() ([][]float32, error)
	upload() error
	close()
}

// benchSpec is the net a benchmark trains and its clips.
type benchSpec struct {
	net                   *model.Net
	params                *model.Params
	T, C, H, W, Tokens, D int
	tol                   float64 // worst relative error of a step-1 gradient tensor
	open                  func(s benchSpec, ordinal, B int) (benchNet, error)
	describe              string
}

// newGPUBench is set by the gpu-tagged build (sdbench_gpu_test.go).
var newGPUBench func(t *testing.T) benchSpec

func benchInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// TestDistSDBench is one process of the benchmark (see above).
func TestDistSDBench(t *testing.T) {
	kind, mode := os.Getenv(benchEnv), os.Getenv(benchModeEnv)
	if kind == "" {
		t.Skip(benchEnv + "=cpu|gpu runs the data-parallel SD step benchmark (bench/dist_gpu.sh)")
	}
	var spec benchSpec
	switch kind {
	case "cpu":
		spec = cpuBench(t)
	case "gpu":
		if newGPUBench == nil {
			t.Fatal(benchEnv + "=gpu needs a binary built with -tags gpu")
		}
		spec = newGPUBench(t)
	default:
		t.Fatalf("%s=%q: want cpu or gpu", benchEnv, kind)
	}
	env := Env{World: 1}
	switch mode {
	case "dist":
		var err error
		if env, err = FromEnv(); err != nil {
			t.Fatal(err)
		}
	case "ref":
	default:
		t.Fatalf("%s=%q: want ref or dist", benchModeEnv, mode)
	}
	per := benchInt(t, benchPerEnv, 1)
	global := benchInt(t, benchGlobalEnv, env.World*per)
	steps := benchInt(t, benchStepsEnv, 5)
	dir := os.Getenv(benchDirEnv)
	if dir == "" {
		t.Fatal(benchDirEnv + " is not set")
	}
	lo, hi := 0, global
	if mode == "dist" {
		var err error
		if lo, hi, err = Slice(global, env.Rank, env.World); err != nil {
			t.Fatal(err)
		}
		if hi-lo != per {
			t.Fatalf("global batch %d over %d ranks is %d per rank, %s says %d", global, env.World, hi-lo, benchPerEnv, per)
		}
	} else if global%per != 0 {
		t.Fatalf("global batch %d is not a whole number of micro-batches of %d", global, per)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	t0 := time.Now()
	bn, err := spec.open(spec, env.DeviceOrdinal(), per)
	if err != nil {
		t.Fatal(err)
	}
	defer bn.close()
	var g *Group
	buckets := 0
	if mode == "dist" {
		if g, err = Join(context.Background(), env, log); err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		mem, err := bn.memory()
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Open(mem); err != nil {
			t.Fatal(err)
		}
		var sizes []int
		var ps [][]float32
		for _, q := range bn.trainable() {
			sizes, ps = append(sizes, len(q.Data)), append(ps, q.Data)
		}
		red, err := g.NewReducer(sizes)
		if err != nil {
			t.Fatal(err)
		}
		buckets = len(red.Buckets())
		if err := bn.setReducer(red); err != nil {
			t.Fatal(err)
		}
		defer bn.setReducer(nil)
		defer g.CloseComm()
		if err := g.BroadcastParams(ps); err != nil {
			t.Fatal(err)
		}
		if err := bn.upload(); err != nil {
			t.Fatal(err)
		}
	}
	setup := time.Since(t0)
	var ops []*optim.Param
	for _, q := range bn.trainable() {
		ops = append(ops, &optim.Param{Name: q.Name, Shape: q.Shape, Data: q.Data, NoDecay: len(q.Shape) == 1})
	}
	ocfg := optim.DefaultConfig()
	ocfg.LR = 1e-4
	opt, err := optim.New(ocfg, ops)
	if err != nil {
		t.Fatal(err)
	}

	var stepTimes, optTimes []time.Duration
	var loss float64
	gradRel := -1.0
	for step := 1; step <= steps; step++ {
		var sum [][]float64
		var lossSum float64
		micro := 0
		for c := lo; c < hi; c += per {
			in, target := spec.clips(step, c, per)
			st := time.Now()
			l, err := bn.step(in, target)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if step > 1 {
				stepTimes = append(stepTimes, time.Since(st))
			}
			gs, err := bn.grads()
			if err != nil {
				t.Fatal(err)
			}
			if sum == nil {
				sum = make([][]float64, len(gs))
				for i, g := range gs {
					sum[i] = make([]float64, len(g))
				}
			}
			for i, g := range gs {
				for j, v := range g {
					sum[i][j] += float64(v)
				}
			}
			lossSum += float64(l)
			micro++
		}
		ot := time.Now()
		avg := make([][]float32, len(sum))
		for i, s := range sum {
			avg[i] = make([]float32, len(s))
			for j, v := range s {
				avg[i][j] = float32(v / float64(micro))
			}
		}
		loss = lossSum / float64(micro)
		if g != nil {
			if loss, err = g.Mean(loss); err != nil {
				t.Fatal(err)
			}
		}
		if step == 1 {
			path := filepath.Join(dir, "grads-step1.f32")
			switch {
			case mode == "ref":
				writeF32(t, path, avg)
			case env.Rank == 0:
				gradRel = worstRel(t, path, avg)
			}
		}
		if _, err := opt.Step(avg); err != nil {
			t.Fatal(err)
		}
		if err := bn.upload(); err != nil {
			t.Fatal(err)
		}
		optTimes = append(optTimes, time.Since(ot))
	}
	final := make([][]float32, len(ops))
	for i, q := range ops {
		final[i] = q.Data
	}
	path := filepath.Join(dir, "weights-final.f32")
	weightRel, weightAbs := -1.0, -1.0
	switch {
	case mode == "ref":
		writeF32(t, path, final)
	case env.Rank == 0:
		weightRel = worstRel(t, path, final)
		weightAbs = worstAbs(t, path, final)
	}
	if mode == "dist" && env.Rank != 0 {
		return
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	line := fmt.Sprintf("DISTBENCH mode=%s world=%d global=%d per=%d steps=%d buckets=%d step_ms=%.1f opt_ms=%.1f setup_s=%.1f loss=%.6g",
		mode, env.World, global, per, steps, buckets, ms(medianDur(stepTimes)), ms(medianDur(optTimes)), setup.Seconds(), loss)
	if mode == "dist" {
		line += fmt.Sprintf(" grad_rel=%.3g weight_rel=%.3g weight_maxabs=%.3g lr=%g", gradRel, weightRel, weightAbs, ocfg.LR)
	}
	line += " net=" + strconv.Quote(spec.describe)
	fmt.Println(line)
	if err := os.WriteFile(filepath.Join(dir, "distbench-"+mode+".txt"), []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if mode == "dist" {
		if gradRel > spec.tol || math.IsNaN(gradRel) {
			t.Errorf("step-1 averaged gradients: worst tensor relative error %.3g vs one process, want <= %g", gradRel, spec.tol)
		}
		// AdamW's update is about lr per step whatever the gradient's size,
		// so a rounding difference in a near-zero gradient moves a weight
		// by up to lr: the weights must agree to a small part of it
		if weightAbs > 0.05*ocfg.LR*float64(steps) || math.IsNaN(weightAbs) {
			t.Errorf("final weights differ from one process's by up to %.3g (lr %g, %d steps)", weightAbs, ocfg.LR, steps)
		}
	}
}

// clips returns n seeded clips starting at clip index c of the global
// batch of step: the same values whichever process makes them.
func (s benchSpec) clips(step, c, n int) (model.Inputs, []float32) {
	T, fl := s.T, s.H*s.W
	var in model.Inputs
	var target []float32
	for k := c; k < c+n; k++ {
		rng := rand.New(rand.NewPCG(uint64(step), uint64(k)))
		in.Input = appendRandn(rng, in.Input, T*(2*s.C+1)*fl)
		ts := float32(rng.IntN(1000))
		for range T {
			in.Timesteps = append(in.Timesteps, ts)
		}
		in.Context = appendRandn(rng, in.Context, T*s.Tokens*s.D)
		target = appendRandn(rng, target, T*s.C*fl)
	}
	return in, target
}

func appendRandn(rng *rand.Rand, dst []float32, n int) []float32 {
	for range n {
		dst = append(dst, float32(rng.NormFloat64()))
	}
	return dst
}

func medianDur(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func writeF32(t *testing.T, path string, ts [][]float32) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var b [4]byte
	for _, x := range ts {
		for _, v := range x {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			w.Write(b[:])
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// eachRef calls fn with every tensor of the reference file shaped like ts.
func eachRef(t *testing.T, path string, ts [][]float32, fn func(i int, ref []float32)) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the reference's file: %v (run mode ref first)", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var buf []byte
	for i, x := range ts {
		buf = append(buf[:0], make([]byte, 4*len(x))...)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("%s: tensor %d: %v (a reference of another net?)", path, i, err)
		}
		ref := make([]float32, len(x))
		for j := range ref {
			ref[j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
		}
		fn(i, ref)
	}
}

// worstRel is the largest relative L2 error of a tensor of ts against the
// reference (the absolute L2 norm where the reference's is 0).
func worstRel(t *testing.T, path string, ts [][]float32) float64 {
	worst := 0.0
	eachRef(t, path, ts, func(i int, ref []float32) {
		var num, den float64
		for j, v := range ts[i] {
			d := float64(v) - float64(ref[j])
			num += d * d
			den += float64(ref[j]) * float64(ref[j])
		}
		e := math.Sqrt(num)
		if den > 0 {
			e = math.Sqrt(num / den)
		}
		worst = math.Max(worst, e)
	})
	return worst
}

func worstAbs(t *testing.T, path string, ts [][]float32) float64 {
	worst := 0.0
	eachRef(t, path, ts, func(i int, ref []float32) {
		for j, v := range ts[i] {
			worst = math.Max(worst, math.Abs(float64(v)-float64(ref[j])))
		}
	})
	return worst
}

// cpuBench is the tiny SD-architecture inpainting UNet (the fixture's
// config, random weights), pseudo-3D, clips of 3 frames of 8x8 latents, on
// the Gorgonia CPU graph.
func cpuBench(t *testing.T) benchSpec {
	path := os.Getenv("PIPELINE_DIST_BENCH_UNET_CONFIG") // the script's dry run, from elsewhere
	if path == "" {
		path = "../weights/testdata/sd-tiny-inpaint/unet/config.json"
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := model.ParseUNetConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	net, err := model.DescribeUNet(cfg, model.UNetOptions{Pseudo3D: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.NewNetParams(net, 1)
	if err != nil {
		t.Fatal(err)
	}
	return benchSpec{net: net, params: p, T: 3, C: cfg.OutChannels, H: 8, W: 8, Tokens: model.ContextTokens, D: cfg.CrossAttentionDim,
		tol: 1e-5, describe: "tiny SD UNet, CPU", open: openCPUBench}
}

type cpuBenchNet struct {
	g   *model.TrainGraph
	red *Reducer
}

func openCPUBench(s benchSpec, _, B int) (benchNet, error) {
	g, err := model.BuildNetTrain(s.net, s.params, B, s.T, s.H, s.W, func(q *model.Param) bool { return q.Temporal })
	if err != nil {
		return nil, err
	}
	return &cpuBenchNet{g: g}, nil
}

func (c *cpuBenchNet) trainable() []*model.Param   { return c.g.Trainable }
func (c *cpuBenchNet) setReducer(r *Reducer) error { c.red = r; return nil }
func (c *cpuBenchNet) memory() (Memory, error)     { return HostMemory{}, nil }
func (c *cpuBenchNet) upload() error               { return nil }
func (c *cpuBenchNet) close()                      { c.g.Close() }

func (c *cpuBenchNet) step(in model.Inputs, target []float32) (float32, error) {
	if err := c.g.SetContext(in.Context); err != nil {
		return 0, err
	}
	l, err := c.g.Step(in.Input, in.Timesteps, target)
	if err != nil || c.red == nil {
		return l, err
	}
	gs, _ := c.grads()
	return l, c.red.ReduceHost(gs)
}

func (c *cpuBenchNet) grads() ([][]float32, error) {
	out := make([][]float32, len(c.g.Trainable))
	for i := range out {
		out[i] = c.g.Grad(i)
	}
	return out, nil
}

// TestDistSDBenchOnCPU runs the benchmark's two halves here, on the tiny
// UNet: the reference (one process, the global batch of 4 as micro-batches
// of 2) and 2 ranks (torchrun's variables, the stand-in libnccl, 2 clips
// each); rank 0's averaged step-1 gradients and final weights after 3
// AdamW steps match the reference's (the ranks check; this reads their
// report).
func TestDistSDBenchOnCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	if os.Getenv(benchEnv) != "" {
		t.Skip("a process of the benchmark")
	}
	lib := disttest.BuildStandin(t)
	dir := t.TempDir()
	common := []string{benchEnv + "=cpu", benchDirEnv + "=" + dir, benchGlobalEnv + "=4", benchPerEnv + "=2", benchStepsEnv + "=3"}
	disttest.Ranks(t, 1, "TestDistSDBench", "", func(int) []string { return append(common, benchModeEnv+"=ref") })
	if t.Failed() {
		return
	}
	port := disttest.FreePort(t)
	disttest.Ranks(t, 2, "TestDistSDBench", lib, func(r int) []string {
		return append(append(disttest.TorchrunEnv(r, 2, port-1), common...), benchModeEnv+"=dist")
	})
	if t.Failed() {
		return
	}
	for _, mode := range []string{"ref", "dist"} {
		b, err := os.ReadFile(filepath.Join(dir, "distbench-"+mode+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", b)
		if mode == "dist" && !bytes.Contains(b, []byte(" grad_rel=")) || bytes.Contains(b, []byte("=-1 ")) {
			t.Errorf("rank 0 compared nothing: %s", b)
		}
	}
}
