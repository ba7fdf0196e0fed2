package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// ForwardGraph is the network as a Gorgonia graph for a fixed batch shape.
// Write the inputs' data (Input.Value(), Timesteps.Value()) or use Predict.
type ForwardGraph struct {
	Graph      *nn.Graph
	Net        *Net
	B, T, H, W int
	// Input is (B*T, InChannels, H, W); Timesteps is (B*T) (float timestep
	// indices, one per frame); Output is (B*T, OutChannels, H, W).
	Input, Timesteps, Output *G.Node
	// ParamNodes holds the node of each parameter the net uses, by name.
	ParamNodes map[string]*G.Node
	// Values holds the node of every net value (index = value id).
	Values []*G.Node
	// FLOPs is the forward multiply-add count times two.
	FLOPs int64

	machine G.VM
}

// TrainGraph is a ForwardGraph plus target, loss and the gradients of the
// trainable parameters.
type TrainGraph struct {
	ForwardGraph
	// Target is the noise to predict, (B*T, OutChannels, H, W).
	Target *G.Node
	// Loss is the scalar MSE over frames Skip.. of each clip.
	Loss *G.Node
	Skip int
	// Trainable lists the parameters gradients are taken for, in Params
	// order; Grads[i] is the gradient node of Trainable[i].
	Trainable      []*Param
	TrainableNodes []*G.Node
	Grads          []*G.Node
	// BackwardFLOPs estimates the backward pass (data gradients of every
	// layer on the gradient path plus weight gradients of trainable layers).
	BackwardFLOPs int64
}

// build adds the net to g. trainable says which parameters require grad.
func build(g *nn.Graph, net *Net, p *Params, B, T, H, W int, trainable func(*Param) bool) (*ForwardGraph, error) {
	cfg := net.Config
	if err := cfg.CheckSize(H, W); err != nil {
		return nil, err
	}
	if err := net.Check(); err != nil {
		return nil, err
	}
	if B <= 0 || T <= 0 {
		return nil, fmt.Errorf("model: batch %d and frames %d must be > 0", B, T)
	}
	N := B * T
	fg := &ForwardGraph{Graph: g, Net: net, B: B, T: T, H: H, W: W, ParamNodes: map[string]*G.Node{}}
	vals := make([]*G.Node, len(net.Values))
	vals[net.Input] = g.Input("input", N, cfg.InChannels, H, W)
	vals[net.Timesteps] = g.Input("timesteps", N)
	pn := func(name string) (*G.Node, error) {
		if n, ok := fg.ParamNodes[name]; ok {
			return n, nil
		}
		q := p.Get(name)
		if q == nil {
			return nil, fmt.Errorf("model: parameter %s missing", name)
		}
		n := g.Tensor(name, q.Dense(), trainable(q))
		fg.ParamNodes[name] = n
		return n, nil
	}
	for _, l := range net.Layers {
		in := make([]*G.Node, len(l.In))
		for i, v := range l.In {
			in[i] = vals[v]
		}
		ps := make([]*G.Node, len(l.Params))
		for i, name := range l.Params {
			n, err := pn(name)
			if err != nil {
				return nil, err
			}
			ps[i] = n
		}
		var out *G.Node
		var err error
		switch l.Kind {
		case TimestepEmbed:
			out, err = g.TimestepEmbedding(in[0], net.Values[l.Out].Channels)
		case Linear:
			out, err = g.Linear(in[0], ps[0], ps[1])
		case SiLU:
			out, err = g.SiLU(in[0])
		case Conv2D:
			out, err = g.Conv2D(in[0], ps[0], ps[1], l.Stride, l.Pad)
		case TemporalConv:
			out, err = g.TemporalConv(in[0], ps[0], ps[1], B, T)
		case GroupNorm:
			out, err = g.GroupNorm(in[0], ps[0], ps[1], l.Groups, l.Eps)
		case Attention:
			out, err = g.Attention(in[0], B, T, l.Heads, l.Temporal)
		case Upsample:
			out, err = g.Upsample2x(in[0])
		case Add:
			out, err = g.Add(in[0], in[1])
		case AddChannel:
			out, err = g.AddChannel(in[0], in[1])
		case Concat:
			out, err = g.Concat(in[0], in[1])
		default:
			err = fmt.Errorf("unknown layer kind %q", l.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("model: layer %d (%s %s): %w", len(fg.Values), l.Kind, l.Name, err)
		}
		vals[l.Out] = out
	}
	fg.Input, fg.Timesteps, fg.Output = vals[net.Input], vals[net.Timesteps], vals[net.Output]
	fg.Values = vals
	fg.FLOPs = net.FLOPs(B, T, H, W)
	return fg, nil
}

// BuildForward builds the network (backbone alone or video model) for
// sampling, with no gradients.
func BuildForward(p *Params, video bool, B, T, H, W int) (*ForwardGraph, error) {
	net, err := Describe(p.Config, video)
	if err != nil {
		return nil, err
	}
	return build(nn.NewGraph(), net, p, B, T, H, W, func(*Param) bool { return false })
}

// BuildTrain builds the training graph. With video, the net is the video
// model, the trainable set is the temporal parameters and the loss skips
// the first (conditioning) frame of each clip; otherwise the net is the
// backbone, every backbone parameter is trainable and every frame counts
// (pretraining on single frames: pass T = 1, or T frames treated alike).
func BuildTrain(p *Params, video bool, B, T, H, W int) (*TrainGraph, error) {
	net, err := Describe(p.Config, video)
	if err != nil {
		return nil, err
	}
	trainable := func(q *Param) bool { return q.Temporal == video }
	g := nn.NewGraph()
	fg, err := build(g, net, p, B, T, H, W, trainable)
	if err != nil {
		return nil, err
	}
	tg := &TrainGraph{ForwardGraph: *fg}
	tg.Target = g.Input("target", B*T, p.Config.OutChannels, H, W)
	tg.Skip = net.LossSkip
	if T <= tg.Skip {
		return nil, fmt.Errorf("model: training needs more than %d frames per clip (the loss skips %d), got %d", tg.Skip, tg.Skip, T)
	}
	if tg.Loss, err = g.FrameMSE(tg.Output, tg.Target, B, T, tg.Skip); err != nil {
		return nil, fmt.Errorf("model: loss: %w", err)
	}
	for _, q := range p.List {
		n, used := fg.ParamNodes[q.Name]
		if !used || !trainable(q) {
			continue
		}
		tg.Trainable = append(tg.Trainable, q)
		tg.TrainableNodes = append(tg.TrainableNodes, n)
	}
	if len(tg.TrainableNodes) == 0 {
		return nil, fmt.Errorf("model: no trainable parameters")
	}
	if tg.Grads, err = G.Grad(tg.Loss, tg.TrainableNodes...); err != nil {
		return nil, fmt.Errorf("model: gradients: %w", err)
	}
	tg.BackwardFLOPs = net.BackwardFLOPs(B, T, H, W, trainable)
	return tg, nil
}
