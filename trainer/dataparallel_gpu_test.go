//go:build gpu

package trainer

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/dist"
)

// TestTrainNCCLWorldOneOnGPU: world size 1 through the real libnccl
// (PIPELINE_DIST_NCCL=1: ncclCommInitRank with nranks 1, each step's
// gradients all-reduced in buckets on the communication stream as the
// backward pass produces them) inside a real GPU training run, with either
// optimizer state; it trains the weights a run without NCCL trains.
func TestTrainNCCLWorldOneOnGPU(t *testing.T) {
	if ok, why := cuda.Available(); !ok {
		t.Skip("no usable GPU: " + why)
	}
	lib, err := cuda.LoadNCCL()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NCCL: %s", lib.Path)
	t.Setenv(dist.NCCLEnv, "1")
	t.Setenv(dist.BucketEnv, "0.05") // several buckets even for the tiny model
	for _, state := range []OptimizerState{OptimizerHost, OptimizerDevice} {
		plain := trainOpts(t, 6)
		plain.Device, plain.OptimizerState = DeviceCUDA, state
		if _, err := Train(context.Background(), plain); err != nil {
			t.Fatalf("%s without NCCL: %v", state, err)
		}
		o := trainOpts(t, 6)
		o.Device, o.OptimizerState = DeviceCUDA, state
		g, err := dist.Join(context.Background(), dist.Env{World: 1}, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		o.Dist = g
		buckets := 0
		o.afterStep = func(s *session, step int) {
			if s.dp == nil || s.dp.devRed == nil || !g.NCCL() {
				t.Fatalf("%s: step %d did not go through the GPU reducer", state, step)
			}
			buckets = len(s.dp.red.Buckets())
		}
		if _, err := Train(context.Background(), o); err != nil {
			t.Fatalf("%s with NCCL: %v", state, err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if buckets < 2 {
			t.Errorf("%s: %d gradient buckets, want several", state, buckets)
		}
		t.Logf("%s: %d buckets", state, buckets)
		a := readTensors(t, filepath.Join(plain.OutDir, TemporalFile))
		b := readTensors(t, filepath.Join(o.OutDir, TemporalFile))
		worst := 0.0
		for name, ta := range a.Tensors {
			tb, ok := b.Tensors[name]
			if !ok {
				t.Fatalf("%s: %s missing", state, name)
			}
			worst = max(worst, relErr(tb.Data, ta.Data))
		}
		t.Logf("%s: weights with NCCL vs without: worst tensor rel err %.2g", state, worst)
		if worst > 1e-4 || math.IsNaN(worst) {
			t.Errorf("%s: worst tensor rel err %.3g > 1e-4", state, worst)
		}
	}
}

// TestTrainSDNCCLWorldOneOnGPU: train_sd at world size 1 through the real
// libnccl on the SD executor (gpu.SDNet hands each temporal gradient to the
// bucketed all-reduce as its backward pass completes it; several buckets
// even for the tiny model), with validation and a preview: the weights a
// run without NCCL trains.
func TestTrainSDNCCLWorldOneOnGPU(t *testing.T) {
	if ok, why := cuda.Available(); !ok {
		t.Skip("no usable GPU: " + why)
	}
	if _, err := cuda.LoadNCCL(); err != nil {
		t.Fatal(err)
	}
	t.Setenv(dist.NCCLEnv, "1")
	t.Setenv(dist.BucketEnv, "0.05")
	latents := writeSDLatents(t, 3, 5)
	plain := sdTrainOpts(t, latents, 4)
	plain.Device = DeviceCUDA
	if _, err := TrainSD(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	o := sdTrainOpts(t, latents, 4)
	o.Device, o.SampleEvery = DeviceCUDA, 4
	g, err := dist.Join(context.Background(), dist.Env{World: 1}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	o.Dist = g
	buckets := 0
	o.afterStep = func(s *session, step int) {
		if s.dp == nil || s.dp.devRed == nil || s.be.sd == nil {
			t.Fatalf("step %d did not go through the SD executor's reducer", step)
		}
		buckets = len(s.dp.red.Buckets())
	}
	if _, err := TrainSD(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if buckets < 2 {
		t.Errorf("%d gradient buckets, want several", buckets)
	}
	a := readTensors(t, filepath.Join(plain.OutDir, TemporalFile))
	b := readTensors(t, filepath.Join(o.OutDir, TemporalFile))
	worst := 0.0
	for name, ta := range a.Tensors {
		worst = max(worst, relErr(b.Tensors[name].Data, ta.Data))
	}
	t.Logf("%d buckets; weights with NCCL vs without: worst tensor rel err %.2g", buckets, worst)
	if worst > 1e-4 || math.IsNaN(worst) {
		t.Errorf("worst tensor rel err %.3g > 1e-4", worst)
	}
}
