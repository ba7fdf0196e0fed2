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
	// Context is the conditioning sequence (B*T, Length, Channels) of a
	// net that takes one, else nil.
	Context *G.Node
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
	if err := net.CheckSize(H, W); err != nil {
		return nil, err
	}
	if err := net.Check(); err != nil {
		return nil, err
	}
	if B <= 0 || T <= 0 {
		return nil, fmt.Errorf("model: batch %d and frames %d must be > 0", B, T)
	}
	fg := &ForwardGraph{Graph: g, Net: net, B: B, T: T, H: H, W: W, ParamNodes: map[string]*G.Node{}}
	vals := make([]*G.Node, len(net.Values))
	shape := func(v int) []int { return net.Shape(v, B, T, H, W) }
	vals[net.Input] = g.Input("input", shape(net.Input)...)
	vals[net.Timesteps] = g.Input("timesteps", B*T)
	if net.Context >= 0 {
		vals[net.Context] = g.Input("context", shape(net.Context)...)
		fg.Context = vals[net.Context]
	}
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
	for i, l := range net.Layers {
		in := make([]*G.Node, len(l.In))
		for j, v := range l.In {
			in[j] = vals[v]
		}
		ps := make([]*G.Node, len(l.Params))
		for j, name := range l.Params {
			n, err := pn(name)
			if err != nil {
				return nil, err
			}
			ps[j] = n
		}
		out, err := buildLayer(g, net, l, in, ps, B, T, H, W)
		if err != nil {
			return nil, fmt.Errorf("model: layer %d (%s %s): %w", i, l.Kind, l.Name, err)
		}
		vals[l.Out] = out
	}
	fg.Input, fg.Timesteps, fg.Output = vals[net.Input], vals[net.Timesteps], vals[net.Output]
	fg.Values = vals
	fg.FLOPs = net.FLOPs(B, T, H, W)
	return fg, nil
}

// optionalNode returns ps[i] or nil (a layer without a bias).
func optionalNode(ps []*G.Node, i int) *G.Node {
	if i < len(ps) {
		return ps[i]
	}
	return nil
}

func buildLayer(g *nn.Graph, net *Net, l Layer, in, ps []*G.Node, B, T, H, W int) (*G.Node, error) {
	N := B * T
	iv := net.Values[l.In[0]]
	P := 1
	if !iv.Vector && iv.Seq != SeqFixed {
		P = (H / iv.Scale) * (W / iv.Scale)
	}
	outShape := net.Shape(l.Out, B, T, H, W)
	switch l.Kind {
	case TimestepEmbed:
		return g.TimestepEmbedding(in[0], net.Values[l.Out].Channels)
	case SinusoidalEmbed:
		return g.SinusoidalEmbedding(in[0], nn.SinusoidalShape{Dim: net.Values[l.Out].Channels, FlipSinToCos: l.FlipSinToCos, FreqShift: l.FreqShift})
	case Linear:
		return g.Linear(in[0], ps[0], optionalNode(ps, 1))
	case SiLU:
		return g.SiLU(in[0])
	case Conv2D:
		return g.Conv2D(in[0], ps[0], optionalNode(ps, 1), l.Stride, l.Pad)
	case TemporalConv:
		return g.TemporalConv(in[0], ps[0], optionalNode(ps, 1), B, T)
	case GroupNorm:
		if !l.Joint {
			return g.GroupNorm(in[0], ps[0], ps[1], l.Groups, l.Eps)
		}
		// (B, T, C, P) -> (B, C, T*P), normalise, and back
		c := iv.Channels
		sw := nn.SwapShape{A: B, X: T, Y: c, D: P}
		a, err := g.SwapAxes(in[0], sw, B, c, T*(H/iv.Scale), W/iv.Scale)
		if err != nil {
			return nil, err
		}
		if a, err = g.GroupNorm(a, ps[0], ps[1], l.Groups, l.Eps); err != nil {
			return nil, err
		}
		return g.SwapAxes(a, sw.Inverse(), outShape...)
	case LayerNorm:
		return g.LayerNorm(in[0], ps[0], ps[1], l.Eps)
	case GEGLU:
		return g.GEGLU(in[0])
	case SeqAttention:
		return g.SeqAttention(in[0], in[1], in[2], l.Heads, l.Causal)
	case ToTokens:
		return g.SwapAxes(in[0], nn.SwapShape{A: N, X: iv.Channels, Y: P, D: 1}, outShape...)
	case ToFrames:
		return g.SwapAxes(in[0], nn.SwapShape{A: N, X: P, Y: iv.Channels, D: 1}, outShape...)
	case ToTime:
		return g.SwapAxes(in[0], nn.SwapShape{A: B, X: T, Y: P, D: iv.Channels}, outShape...)
	case FromTime:
		return g.SwapAxes(in[0], nn.SwapShape{A: B, X: P, Y: T, D: iv.Channels}, outShape...)
	case Attention:
		return g.Attention(in[0], B, T, l.Heads, l.Temporal)
	case Upsample:
		return g.Upsample2x(in[0])
	case Add:
		return g.Add(in[0], in[1])
	case AddChannel:
		return g.AddChannel(in[0], in[1])
	case Concat:
		return g.Concat(in[0], in[1])
	}
	return nil, fmt.Errorf("unknown layer kind %q", l.Kind)
}

// BuildNetForward builds any described net (an SD UNet among them) for
// inference, with no gradients.
func BuildNetForward(net *Net, p *Params, B, T, H, W int) (*ForwardGraph, error) {
	return build(nn.NewGraph(), net, p, B, T, H, W, func(*Param) bool { return false })
}

// BuildNetTrain builds the training graph of any described net: the loss
// is the MSE of the output against Target over frames net.LossSkip.. of
// each clip, and gradients are taken for the parameters trainable selects.
func BuildNetTrain(net *Net, p *Params, B, T, H, W int, trainable func(*Param) bool) (*TrainGraph, error) {
	g := nn.NewGraph()
	fg, err := build(g, net, p, B, T, H, W, trainable)
	if err != nil {
		return nil, err
	}
	tg := &TrainGraph{ForwardGraph: *fg}
	tg.Target = g.Input("target", net.Shape(net.Output, B, T, H, W)...)
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
	return BuildNetTrain(net, p, B, T, H, W, func(q *Param) bool { return q.Temporal == video })
}
