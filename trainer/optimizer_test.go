package trainer

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
)

// optimizer_state device keeps the moments on the GPU: without device cuda
// it is refused before anything is read or written, with a message that
// says what to change.
func TestOptimizerStateDeviceNeedsCUDA(t *testing.T) {
	for _, device := range []Device{"", DeviceCPU} {
		c := tinyCommon(t, "no-shards-needed", 2)
		c.Device, c.OptimizerState = device, "device"
		_, err := Pretrain(context.Background(), PretrainOptions{Common: c})
		if err == nil || !strings.Contains(err.Error(), "optimizer_state device") || !strings.Contains(err.Error(), "needs device cuda") ||
			!strings.Contains(err.Error(), "device is cpu") {
			t.Errorf("device %q: err = %v, want the optimizer_state device / device cuda error", device, err)
		}
		_, err = Train(context.Background(), TrainOptions{Common: c, Backbone: "none.safetensors"})
		if err == nil || !strings.Contains(err.Error(), "needs device cuda") {
			t.Errorf("train, device %q: err = %v", device, err)
		}
		if ents, _ := os.ReadDir(c.OutDir); len(ents) != 0 {
			t.Errorf("device %q: refused run wrote %d files", device, len(ents))
		}
	}
	c := tinyCommon(t, "x", 2)
	c.OptimizerState = "gpu"
	if _, err := Pretrain(context.Background(), PretrainOptions{Common: c}); err == nil || !strings.Contains(err.Error(), "want host or device") {
		t.Errorf("optimizer_state gpu: err = %v", err)
	}
}

// The feeder, which builds step k+1's example while step k runs, yields
// bit for bit the examples of building each one just before its step, and
// records the noise stream's state after each.
func TestFeederMatchesSequentialFill(t *testing.T) {
	dir := makeShards(t, 3, 10, 16)
	ds, err := shards.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	sched, err := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	if err != nil {
		t.Fatal(err)
	}
	open := func() *shards.Loader {
		ld, err := shards.NewLoader(ds, shards.LoaderOptions{Split: shards.SplitTrain, FramesLength: 4, Stride: 1,
			Resolution: 16, Batch: 2, Workers: 2, Seed: 5, Sampling: shards.SamplingEpoch})
		if err != nil {
			t.Fatal(err)
		}
		return ld
	}
	const steps = 5
	newEx := func() *example { return newExample(true, 2, 4, 16) }

	ld := open()
	rng := rand.NewPCG(9, streamNoise)
	rnd := rand.New(rng)
	var want []*example
	var wantState [][]byte
	for range steps {
		b, err := ld.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ex := newEx()
		if err := ex.fill(b, sched, rnd); err != nil {
			t.Fatal(err)
		}
		want = append(want, ex)
		st, _ := rng.MarshalBinary()
		wantState = append(wantState, st)
	}
	ld.Close()

	ld = open()
	defer ld.Close()
	f := newFeeder(ld, sched, rand.NewPCG(9, streamNoise), newEx)
	defer f.wait()
	for k := 1; k <= steps; k++ {
		p, err := f.get(context.Background(), k, steps)
		if err != nil {
			t.Fatal(err)
		}
		if (k < steps) != (f.pending != nil) {
			t.Errorf("step %d: preparing ahead = %v", k, f.pending != nil)
		}
		w := want[k-1]
		for name, pair := range map[string][2][]float32{"input": {p.ex.input, w.input}, "timesteps": {p.ex.timesteps, w.timesteps}, "target": {p.ex.target, w.target}} {
			if !sameBits(pair[0], pair[1]) {
				t.Errorf("step %d: %s differs from the sequential fill", k, name)
			}
		}
		if string(p.rngState) != string(wantState[k-1]) {
			t.Errorf("step %d: recorded rng state differs", k)
		}
	}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
