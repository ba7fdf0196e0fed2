//go:build gpu

package trainer

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// On the GPU, optimizer_state device (gpu.DeviceAdamW) trains the same
// temporal weights as host (trainer/optim) up to float rounding, and the
// checkpoints are interchangeable: a run interrupted with one resumes with
// the other and ends where a straight run ends.
func TestOptimizerStateDeviceOnGPU(t *testing.T) {
	if ok, why := cuda.Available(); !ok {
		t.Skip("no usable GPU: " + why)
	}
	const steps, cut = 8, 4
	opts := func(state OptimizerState) TrainOptions {
		o := trainOpts(t, steps)
		o.Device, o.OptimizerState = "cuda", state
		return o
	}
	straight := func(state OptimizerState) (w, st *checkpoint.File) {
		o := opts(state)
		if _, err := Train(context.Background(), o); err != nil {
			t.Fatalf("%s: %v", state, err)
		}
		return readTensors(t, filepath.Join(o.OutDir, TemporalFile)), readTensors(t, filepath.Join(o.OutDir, TrainStateFile))
	}
	split := func(first, then OptimizerState) *checkpoint.File {
		o := opts(first)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		o.afterStep = func(_ *session, step int) {
			if step == cut {
				cancel()
			}
		}
		if _, err := Train(ctx, o); !errors.Is(err, context.Canceled) {
			t.Fatalf("%s then %s: interrupted run: err = %v", first, then, err)
		}
		o.afterStep, o.Resume, o.OptimizerState = nil, true, then
		res, err := Train(context.Background(), o)
		if err != nil {
			t.Fatalf("%s then %s: %v", first, then, err)
		}
		if res.ResumedFrom != cut || res.Steps != steps {
			t.Fatalf("%s then %s: resumed from %d to %d, want %d to %d", first, then, res.ResumedFrom, res.Steps, cut, steps)
		}
		return readTensors(t, filepath.Join(o.OutDir, TemporalFile))
	}
	hostW, hostSt := straight("host")
	devW, devSt := straight("device")
	if hostSt.Metadata["optim_step"] != devSt.Metadata["optim_step"] || len(hostSt.Tensors) != len(devSt.Tensors) {
		t.Fatalf("state files differ: optim_step %q vs %q, %d vs %d tensors", hostSt.Metadata["optim_step"],
			devSt.Metadata["optim_step"], len(hostSt.Tensors), len(devSt.Tensors))
	}
	const tol = 1e-4
	compare := func(what string, a, b *checkpoint.File) {
		t.Helper()
		worst := 0.0
		for name, ta := range a.Tensors {
			tb, ok := b.Tensors[name]
			if !ok {
				t.Errorf("%s: %s missing", what, name)
				continue
			}
			worst = max(worst, relErr(tb.Data, ta.Data))
		}
		t.Logf("%s: worst tensor rel err %.2g (%d tensors)", what, worst, len(a.Tensors))
		if worst > tol || math.IsNaN(worst) {
			t.Errorf("%s: worst tensor rel err %.3g > %g", what, worst, tol)
		}
	}
	compare("weights, device vs host", hostW, devW)
	compare("moments, device vs host", hostSt, devSt)
	compare("weights, host then device vs host", hostW, split("host", "device"))
	compare("weights, device then host vs device", devW, split("device", "host"))
}

// relErr is ‖a − b‖ / ‖b‖ in float64.
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}
