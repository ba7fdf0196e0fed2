package gpu

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// sdKinds are the layer kinds the SD executor runs (SDNet): the SD UNet's,
// the VAE's and the CLIP text encoder's, and the pixel model's simple ones.
var sdKinds = map[model.LayerKind]bool{
	model.TimestepEmbed: true, model.SinusoidalEmbed: true, model.Linear: true, model.SiLU: true,
	model.Conv2D: true, model.Conv2DPadEnd: true, model.TemporalConv: true, model.GroupNorm: true,
	model.LayerNorm: true, model.GEGLU: true, model.GELU: true, model.QuickGELU: true,
	model.SeqAttention: true, model.TokenEmbed: true, model.ToTokens: true, model.ToFrames: true,
	model.ToTime: true, model.FromTime: true, model.Upsample: true, model.Add: true,
	model.AddChannel: true, model.Concat: true,
}

// sdPlan is what an SD step needs to know before running: value shapes,
// which values a gradient reaches, what backward reads and when each value
// can be freed (in a training pass and in a forward-only pass).
type sdPlan struct {
	net        *model.Net
	B, T, H, W int
	shapes     [][]int
	trainable  map[string]bool
	reqGrad    []bool
	backward   []bool
	saves      [][]bool
	// freeFwd[l]/freeBwd[l]: values to free after layer l's forward /
	// backward in a training pass; freeEval[l]: after its forward in a
	// forward-only pass.
	freeFwd, freeBwd, freeEval [][]int
	persistent                 []bool
}

func newSDPlan(net *model.Net, B, T, H, W int, trainable func(model.ParamSpec) bool) (*sdPlan, error) {
	if err := net.CheckSize(H, W); err != nil {
		return nil, err
	}
	if err := net.Check(); err != nil {
		return nil, err
	}
	if B <= 0 || T <= 0 {
		return nil, fmt.Errorf("gpu: batch %d and frames %d must be > 0", B, T)
	}
	for i, l := range net.Layers {
		if l.Kind == model.Attention {
			return nil, fmt.Errorf("gpu: layer %d (%s): packed attention belongs to the pixel model's step (NewStep)", i, l.Name)
		}
		if !sdKinds[l.Kind] {
			return nil, fmt.Errorf("gpu: layer %d (%s %s): kind %q is not supported", i, l.Kind, l.Name, l.Kind)
		}
	}
	p := &sdPlan{net: net, B: B, T: T, H: H, W: W, trainable: map[string]bool{}}
	for _, s := range net.Params {
		if trainable != nil && trainable(s) {
			p.trainable[s.Name] = true
		}
	}
	nv, nl := len(net.Values), len(net.Layers)
	p.shapes = make([][]int, nv)
	for v := range net.Values {
		p.shapes[v] = net.Shape(v, B, T, H, W)
	}
	if net.Timesteps >= 0 {
		p.shapes[net.Timesteps] = []int{B * T}
	}
	p.reqGrad = make([]bool, nv)
	p.backward = make([]bool, nl)
	p.saves = make([][]bool, nl)
	for i, l := range net.Layers {
		wTrain := false
		for _, n := range l.Params {
			wTrain = wTrain || p.trainable[n]
		}
		any := wTrain
		for _, v := range l.In {
			any = any || p.reqGrad[v]
		}
		p.reqGrad[l.Out], p.backward[i] = any, any
		p.saves[i] = make([]bool, len(l.In))
		if any {
			p.saves[i] = model.BackwardReads(l, wTrain)
		}
	}
	p.persistent = make([]bool, nv)
	for _, v := range []int{net.Input, net.Timesteps, net.Context, net.Output} {
		if v >= 0 {
			p.persistent[v] = true
		}
	}
	p.freeFwd, p.freeBwd, p.freeEval = freeLists(net, p.backward, p.saves, p.persistent)
	return p, nil
}

// sdBuffers is the bytes of an SDNet's long-lived buffers.
type sdBuffers struct{ frozen, trainable, grads int64 }

func (b sdBuffers) total() int64 { return b.frozen + b.trainable + b.grads }

// bufferBytes adds up the weights (16-bit frozen ones, float32 frozen and
// trainable ones) and the parameter gradients.
func (s *SDNet) bufferBytes() sdBuffers {
	var b sdBuffers
	for _, t := range s.halfW {
		b.frozen += 4 * int64(t.Len())
	}
	for n, t := range s.weights {
		if s.p.trainable[n] {
			b.trainable += 4 * int64(t.Len())
		} else {
			b.frozen += 4 * int64(t.Len())
		}
	}
	for _, t := range s.wgrads {
		b.grads += 4 * int64(t.Len())
	}
	return b
}

// SDStepSchedule is what a memory planner (trainer/plan's Job) needs to
// know of the training step NewSDNet runs in precision p with the
// options' defaults: whether the spatial attention runs fused, the
// element size of the checkpointed boundaries (0: whole, float32) and the
// queries x keys from which the fused attention's results are kept
// (0: none).
func SDStepSchedule(p Precision, checkpointing bool) (fused bool, boundaryBytes, keepAttention int) {
	fused = p.Half()
	if checkpointing && p.Half() {
		boundaryBytes = 2
		if fused {
			keepAttention = DefaultCheckpointKeepAttention
		}
	}
	return fused, boundaryBytes, keepAttention
}
