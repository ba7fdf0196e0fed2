package plan

import (
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// graphBytes is what the Gorgonia CPU executor allocated: the bytes of
// every distinct tensor bound to a node of the graph after one run
// (parameters, inputs, every activation, and for a training graph the
// gradients and the loss).
func graphBytes(g *G.ExprGraph) int64 {
	seen := map[uintptr]bool{}
	var total int64
	for _, nd := range g.AllNodes() {
		d, ok := nd.Value().(tensor.Tensor)
		if !ok || d == nil || seen[d.Uintptr()] {
			continue
		}
		seen[d.Uintptr()] = true
		total += int64(d.MemSize())
	}
	return total
}

// The estimate stays honest against the CPU executor: on the tiny SD
// inpainting UNet inflated to pseudo-3D (one clip of 4 frames of 8x8
// latents), the KeepAll float32 estimate of the forward graph and of the
// training graph are within 15% of the bytes the Gorgonia graph holds
// after a run (measured: forward exact, training about 5% above).
func TestEstimateMatchesCPUExecutor(t *testing.T) {
	u, err := model.LoadUNet("../weights/testdata/sd-tiny-inpaint/unet", weights.Options{}, model.UNetOptions{Pseudo3D: true})
	if err != nil {
		t.Fatal(err)
	}
	const B, T, H, W = 1, 4, 8, 8
	in, ts := make([]float32, B*T*9*H*W), make([]float32, B*T)
	job := Job{Net: u.Net, B: B, T: T, H: H, W: W, WeightBytes: 4, ActBytes: 4, KeepAll: true}

	fg, err := model.BuildNetForward(u.Net, u.Params, B, T, H, W)
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	if _, err := fg.Predict(in, ts); err != nil {
		t.Fatal(err)
	}
	e, err := Plan(job)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, est, got int64) {
		r := float64(est) / float64(got)
		t.Logf("%s: estimate %d B, measured %d B (ratio %.3f)", what, est, got, r)
		if math.Abs(r-1) > 0.15 {
			t.Errorf("%s: estimate %d is %.1f%% off the measured %d", what, est, 100*(r-1), got)
		}
	}
	check("forward", e.Total, graphBytes(fg.Graph.G))

	tg, err := model.BuildNetTrain(u.Net, u.Params, B, T, H, W, func(q *model.Param) bool { return q.Temporal })
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if _, err := tg.Step(in, ts, make([]float32, B*T*4*H*W)); err != nil {
		t.Fatal(err)
	}
	job.Train = true
	if e, err = Plan(job); err != nil {
		t.Fatal(err)
	}
	check("training step", e.Total, graphBytes(tg.Graph.G))
	// a planned executor needs less: freed values, checkpointing less again
	job.KeepAll = false
	p, _ := Plan(job)
	job.Checkpoint = true
	c, _ := Plan(job)
	if !(c.Activations < p.Activations && p.Total < e.Total+p.Attention) {
		t.Errorf("checkpointed activations %d, planned %d; planned total %d, kept-all %d", c.Activations, p.Activations, p.Total, e.Total)
	}
	if p.HostOptimizer != 8*p.TrainableParams || p.Optimizer != 0 {
		t.Errorf("host optimizer %d, device %d for %d trainable", p.HostOptimizer, p.Optimizer, p.TrainableParams)
	}
}

// Full-size SD-1.5 inpainting inflated: weights by precision from the
// exact parameter counts.
func TestFullSizeWeights(t *testing.T) {
	net, err := model.DescribeUNet(model.SD15UNet(9), model.UNetOptions{Pseudo3D: true})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Plan(Job{Net: net, B: 1, T: 25, H: 64, W: 64, Train: true, WeightBytes: 2, ActBytes: 2, Checkpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if e.Params != 1100578616 || e.TrainableParams != 241043252 {
		t.Fatalf("params %d, trainable %d", e.Params, e.TrainableParams)
	}
	if e.FrozenWeights != 2*(1100578616-241043252) || e.TrainableWeights != 4*241043252 {
		t.Errorf("frozen %d, trainable %d bytes", e.FrozenWeights, e.TrainableWeights)
	}
	t.Logf("SD-1.5 inpainting pseudo-3D, 1x25 frames of 64x64 latents, fp16, checkpointed: %.2f GiB on the GPU (activations %.2f, grads %.2f, attention %.2f), %.2f GiB AdamW on the host",
		gib(e.Total), gib(e.Activations), gib(e.ActivationGrads+e.ParamGrads), gib(e.Attention), gib(e.HostOptimizer))
}

func gib(b int64) float64 { return float64(b) / (1 << 30) }
