package gpu

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// plan is everything about a step that depends only on the net and the
// batch shape: tensor shapes, which values a gradient reaches, what the
// backward pass reads, and when each activation can be freed.
type plan struct {
	net        *model.Net
	B, T, H, W int
	N          int // B*T frames
	shapes     [][]int
	// trainable holds the parameters gradients are taken for.
	trainable map[string]bool
	// reqGrad[v]: a gradient flows to value v (it depends on a trainable
	// parameter); backward[l]: layer l runs a backward step.
	reqGrad  []bool
	backward []bool
	// saves[l][i]: layer l's backward reads its input i.
	saves [][]bool
	// freeAfterFwd[l] lists values whose last reader is layer l's forward
	// and which backward never reads; freeAfterBwd[l] lists values whose
	// last backward reader is layer l.
	freeAfterFwd [][]int
	freeAfterBwd [][]int
	// freeAfterEval[l] lists the values whose last forward reader is layer l
	// (a forward-only pass keeps nothing for a backward pass).
	freeAfterEval [][]int
	// persistent values live outside the per-step allocation (step inputs).
	persistent []bool
	// fusedGN[i]: layer i is a GroupNorm fused with the SiLU at i+1
	// (gnsilu.go); fusedSiLU[i]: layer i is that SiLU.
	fusedGN, fusedSiLU []bool
	// fusedTconv[i]: layer i is a temporal conv whose output only feeds an
	// AddChannel, which adds the conv's bias with the embedding in one
	// in-place pass; addBiasOf[j] is that conv's index for AddChannel j
	// (-1 for every other layer).
	fusedTconv []bool
	addBiasOf  []int
}

func (p *plan) paramTrainable(names []string) bool {
	for _, n := range names {
		if p.trainable[n] {
			return true
		}
	}
	return false
}

// shapeOf returns the tensor shape of value v for N frames of H x W.
func shapeOf(net *model.Net, v, N, H, W int) []int {
	val := net.Values[v]
	switch {
	case v == net.Timesteps:
		return []int{N}
	case val.Vector:
		return []int{N, val.Channels}
	default:
		return []int{N, val.Channels, H / val.Scale, W / val.Scale}
	}
}

func newPlan(net *model.Net, B, T, H, W int, trainable func(model.ParamSpec) bool) (*plan, error) {
	if err := net.Config.CheckSize(H, W); err != nil {
		return nil, err
	}
	if err := net.Check(); err != nil {
		return nil, err
	}
	if B <= 0 || T <= 0 {
		return nil, fmt.Errorf("gpu: batch %d and frames %d must be > 0", B, T)
	}
	p := &plan{net: net, B: B, T: T, H: H, W: W, N: B * T, trainable: map[string]bool{}}
	for _, s := range net.Params {
		if trainable(s) {
			p.trainable[s.Name] = true
		}
	}
	nv, nl := len(net.Values), len(net.Layers)
	p.shapes = make([][]int, nv)
	for v := range net.Values {
		p.shapes[v] = shapeOf(net, v, p.N, H, W)
	}
	p.reqGrad = make([]bool, nv)
	p.backward = make([]bool, nl)
	p.saves = make([][]bool, nl)
	for i, l := range net.Layers {
		any := p.paramTrainable(l.Params)
		for _, v := range l.In {
			any = any || p.reqGrad[v]
		}
		p.reqGrad[l.Out] = any
		p.backward[i] = any
		p.saves[i] = make([]bool, len(l.In))
		if !any {
			continue
		}
		wTrain := p.paramTrainable(l.Params)
		switch l.Kind {
		case model.Conv2D, model.TemporalConv, model.Linear:
			p.saves[i][0] = wTrain // x is read only for the weight gradient
		case model.GroupNorm, model.SiLU:
			p.saves[i][0] = true
		case model.Attention:
			// spatial attention reads qkv; temporal attention keeps its own
			// frame-major copy of it (attention.go)
			p.saves[i][0] = !l.Temporal
		}
	}
	p.fusedGN = make([]bool, nl)
	p.fusedSiLU = make([]bool, nl)
	p.fusedTconv = make([]bool, nl)
	p.addBiasOf = make([]int, nl)
	for i := range p.addBiasOf {
		p.addBiasOf[i] = -1
	}
	for i := range net.Layers {
		if fusable(net, i) {
			p.fusedGN[i], p.fusedSiLU[i+1] = true, true
			p.saves[i+1][0] = false // the fused backward recomputes the SiLU input
		}
		if j := fusableTconv(net, i); j >= 0 {
			p.fusedTconv[i], p.addBiasOf[j] = true, i
		}
	}
	p.persistent = make([]bool, nv)
	p.persistent[net.Input] = true
	p.persistent[net.Timesteps] = true
	p.persistent[net.Output] = true // read by the loss, freed by the step

	p.freeAfterFwd, p.freeAfterBwd, p.freeAfterEval = freeLists(net, p.backward, p.saves, p.persistent)
	return p, nil
}

// savedFloats is the number of activation values kept from the forward
// pass for the backward pass (not counting attention probabilities and
// group-norm statistics), a measure of the plan's memory.
func (p *plan) savedFloats() int64 {
	var n int64
	seen := map[int]bool{}
	for i, l := range p.net.Layers {
		for j, v := range l.In {
			if p.backward[i] && p.saves[i][j] && !seen[v] {
				seen[v] = true
				n += int64(numel(p.shapes[v]))
			}
		}
	}
	return n
}

func numel(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}
