package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Graph is a Gorgonia expression graph plus the set of nodes a gradient
// must reach. A parameter added as trainable, or a node computed from one,
// "requires grad"; every op built through Graph sends gradients only to
// inputs that require them, so G.Grad(loss, trainable...) builds no node
// for a frozen parameter.
type Graph struct {
	G   *G.ExprGraph
	req map[*G.Node]bool
}

// NewGraph returns an empty graph.
func NewGraph() *Graph {
	return &Graph{G: G.NewGraph(), req: map[*G.Node]bool{}}
}

// RequiresGrad reports whether a gradient flows to n.
func (g *Graph) RequiresGrad(n *G.Node) bool { return g.req[n] }

// Tensor adds a named input node bound to t (shared memory: writing t's
// data changes what the next run reads). requiresGrad marks it as a
// gradient target (a trainable parameter).
func (g *Graph) Tensor(name string, t *tensor.Dense, requiresGrad bool) *G.Node {
	n := G.NewTensor(g.G, tensor.Float32, t.Dims(), G.WithShape(t.Shape()...), G.WithName(name), G.WithValue(t))
	g.req[n] = requiresGrad
	return n
}

// Input adds a named input node of the given shape with a zeroed value.
func (g *Graph) Input(name string, shape ...int) *G.Node {
	return g.Tensor(name, tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32)), false)
}

func (g *Graph) add(k kernel, in ...*G.Node) (*G.Node, error) {
	need := make([]bool, len(in))
	any := false
	for i, n := range in {
		need[i] = g.req[n]
		any = any || need[i]
	}
	n, err := apply(k, need, in...)
	if err != nil {
		return nil, err
	}
	g.req[n] = g.req[n] || any
	return n, nil
}

func dims4(n *G.Node, what string) (a, b, c, d int, err error) {
	s := n.Shape()
	if len(s) != 4 {
		return 0, 0, 0, 0, fmt.Errorf("nn: %s: want a 4D (N, C, H, W) input, got shape %v", what, s)
	}
	return s[0], s[1], s[2], s[3], nil
}

// Conv2D adds y = conv(x, w) + b for x (N, C, H, W), w (K, C, KH, KW), b (K)
// or nil.
func (g *Graph) Conv2D(x, w, b *G.Node, stride, pad int) (*G.Node, error) {
	n, c, h, wd, err := dims4(x, "conv2d")
	if err != nil {
		return nil, err
	}
	ws := w.Shape()
	if len(ws) != 4 || ws[1] != c {
		return nil, fmt.Errorf("nn: conv2d: weight shape %v does not fit input %v", ws, x.Shape())
	}
	s := Conv2DShape{N: n, C: c, H: h, W: wd, K: ws[0], KH: ws[2], KW: ws[3], Stride: stride, Pad: pad}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	in := []*G.Node{x, w}
	if b != nil {
		if b.Shape().TotalSize() != s.K {
			return nil, fmt.Errorf("nn: conv2d: bias shape %v, want (%d)", b.Shape(), s.K)
		}
		in = append(in, b)
	}
	return g.add(&conv2dK{s: s, hasBias: b != nil}, in...)
}

// TemporalConv adds the kernel-3 convolution over frames of x (B*T, C, H, W)
// with w (K, C, 3) and b (K) or nil.
func (g *Graph) TemporalConv(x, w, b *G.Node, B, T int) (*G.Node, error) {
	n, c, h, wd, err := dims4(x, "temporal conv")
	if err != nil {
		return nil, err
	}
	if B*T != n {
		return nil, fmt.Errorf("nn: temporal conv: B*T = %d*%d does not match %d frames", B, T, n)
	}
	ws := w.Shape()
	if len(ws) != 3 || ws[1] != c || ws[2] != TemporalKernel {
		return nil, fmt.Errorf("nn: temporal conv: weight shape %v does not fit input %v", ws, x.Shape())
	}
	s := TemporalConvShape{B: B, T: T, C: c, K: ws[0], P: h * wd}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	in := []*G.Node{x, w}
	if b != nil {
		in = append(in, b)
	}
	k := &tconvFwd{tconvK: tconvK{s: s, hasBias: b != nil}, inShape: x.Shape().Clone(), outShape: tensor.Shape{n, ws[0], h, wd}}
	return g.add(k, in...)
}

// GroupNorm adds group normalisation of x (N, C, H, W) with gamma, beta (C);
// eps is added to each group's variance.
func (g *Graph) GroupNorm(x, gamma, beta *G.Node, groups int, eps float32) (*G.Node, error) {
	n, c, h, w, err := dims4(x, "group norm")
	if err != nil {
		return nil, err
	}
	s := GroupNormShape{N: n, C: c, P: h * w, Groups: groups, Eps: eps}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if gamma.Shape().TotalSize() != c || beta.Shape().TotalSize() != c {
		return nil, fmt.Errorf("nn: group norm: gamma %v / beta %v, want (%d)", gamma.Shape(), beta.Shape(), c)
	}
	return g.add(&gnK{s: s, shape: x.Shape().Clone()}, x, gamma, beta)
}

// SiLU adds x * sigmoid(x).
func (g *Graph) SiLU(x *G.Node) (*G.Node, error) {
	return g.add(&siluK{shape: x.Shape().Clone()}, x)
}

// Linear adds y = x W^T + b for x (N, In), W (Out, In), b (Out) or nil.
// x may have more leading axes (tokens (N, L, In) give (N, L, Out)).
func (g *Graph) Linear(x, w, b *G.Node) (*G.Node, error) {
	xs, ws := x.Shape(), w.Shape()
	if len(xs) < 2 || len(ws) != 2 || xs[len(xs)-1] != ws[1] {
		return nil, fmt.Errorf("nn: linear: input %v does not fit weight %v", xs, ws)
	}
	rows, _ := lastAxis(xs)
	s := LinearShape{N: rows, In: ws[1], Out: ws[0]}
	var lead tensor.Shape
	if len(xs) > 2 {
		lead = xs[:len(xs)-1].Clone()
	}
	in := []*G.Node{x, w}
	if b != nil {
		if b.Shape().TotalSize() != s.Out {
			return nil, fmt.Errorf("nn: linear: bias shape %v, want (%d)", b.Shape(), s.Out)
		}
		in = append(in, b)
	}
	return g.add(&linearK{s: s, hasBias: b != nil, lead: lead}, in...)
}

// Attention adds multi-head self-attention on a packed qkv (B*T, 3C, H, W),
// spatial (over H*W) or temporal (over T). The output is (B*T, C, H, W).
func (g *Graph) Attention(qkv *G.Node, B, T, heads int, temporal bool) (*G.Node, error) {
	n, c3, h, w, err := dims4(qkv, "attention")
	if err != nil {
		return nil, err
	}
	if c3%3 != 0 || B*T != n {
		return nil, fmt.Errorf("nn: attention: qkv shape %v does not fit B=%d T=%d", qkv.Shape(), B, T)
	}
	s := AttentionShape{B: B, T: T, C: c3 / 3, P: h * w, Heads: heads, Temporal: temporal}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return g.add(&attnK{s: s, h: h, w: w}, qkv)
}

// Upsample2x adds a nearest-neighbour 2x upsample of x (N, C, H, W).
func (g *Graph) Upsample2x(x *G.Node) (*G.Node, error) {
	n, c, h, w, err := dims4(x, "upsample")
	if err != nil {
		return nil, err
	}
	return g.add(&upK{ResampleShape{N: n, C: c, H: h, W: w}}, x)
}

// Add adds a + b of equal shapes.
func (g *Graph) Add(a, b *G.Node) (*G.Node, error) {
	if !a.Shape().Eq(b.Shape()) {
		return nil, fmt.Errorf("nn: add: shapes %v and %v differ", a.Shape(), b.Shape())
	}
	return g.add(&addK{shape: a.Shape().Clone()}, a, b)
}

// AddChannel adds x (N, C, H, W) + e (N, C) broadcast over H, W.
func (g *Graph) AddChannel(x, e *G.Node) (*G.Node, error) {
	n, c, h, w, err := dims4(x, "add channel")
	if err != nil {
		return nil, err
	}
	if es := e.Shape(); len(es) != 2 || es[0] != n || es[1] != c {
		return nil, fmt.Errorf("nn: add channel: bias shape %v, want (%d, %d)", es, n, c)
	}
	return g.add(&addChanK{s: ChannelShape{N: n, C: c, P: h * w}, shape: x.Shape().Clone()}, x, e)
}

// Concat adds the channel concatenation of a (N, CA, H, W) and b (N, CB, H, W).
func (g *Graph) Concat(a, b *G.Node) (*G.Node, error) {
	n, ca, h, w, err := dims4(a, "concat")
	if err != nil {
		return nil, err
	}
	bs := b.Shape()
	if len(bs) != 4 || bs[0] != n || bs[2] != h || bs[3] != w {
		return nil, fmt.Errorf("nn: concat: shapes %v and %v do not fit", a.Shape(), bs)
	}
	k := &concatK{s: ConcatShape{N: n, CA: ca, CB: bs[1], P: h * w}, h: h, w: w, shapeA: a.Shape().Clone(), shapeB: bs.Clone()}
	return g.add(k, a, b)
}

// TimestepEmbedding adds the sinusoidal embedding (N, dim) of t (N).
func (g *Graph) TimestepEmbedding(t *G.Node, dim int) (*G.Node, error) {
	ts := t.Shape()
	if len(ts) != 1 || dim <= 0 {
		return nil, fmt.Errorf("nn: timestep embedding: want a (N) input and dim > 0, got %v, %d", ts, dim)
	}
	n, err := apply(&embedK{n: ts[0], dim: dim}, []bool{false}, t)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// FrameMSE adds the scalar mean squared error between pred and target
// (B*T, C, H, W) over frames t >= skip of each clip.
func (g *Graph) FrameMSE(pred, target *G.Node, B, T, skip int) (*G.Node, error) {
	ps := pred.Shape()
	if !ps.Eq(target.Shape()) || len(ps) == 0 || ps[0] != B*T || skip < 0 || skip >= T {
		return nil, fmt.Errorf("nn: frame mse: shapes %v / %v, B=%d T=%d skip=%d do not fit", ps, target.Shape(), B, T, skip)
	}
	s := FrameMSEShape{B: B, T: T, E: ps.TotalSize() / (B * T), Skip: skip}
	// the target is data: no gradient flows to it
	n, err := apply(&mseK{s: s}, []bool{g.req[pred], false}, pred, target)
	if err != nil {
		return nil, err
	}
	g.req[n] = g.req[pred]
	return n, nil
}
