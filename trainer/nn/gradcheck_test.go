package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// in is one input of a gradient check.
type in struct {
	shape []int
	grad  bool // a gradient is checked (and the input requires grad)
	pos   bool // keep values positive (e.g. a scale)
}

func randData(rng *rand.Rand, n int, pos bool) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(rng.NormFloat64())
		if pos {
			d[i] = 0.5 + float32(rng.Float64())
		}
	}
	return d
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// gradCheck builds op over the inputs, takes loss = mean((y - r)^2) over
// all of y for a random r, and compares G.Grad's gradient of each checked
// input with central finite differences of the loss computed in float64
// from the float32 forward output, at up to 24 sampled elements.
func gradCheck(t *testing.T, name string, ins []in, op func(g *Graph, x []*G.Node) (*G.Node, error)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(name)), 7))
	g := NewGraph()
	nodes := make([]*G.Node, len(ins))
	datas := make([][]float32, len(ins))
	for i, s := range ins {
		datas[i] = randData(rng, size(s.shape), s.pos)
		nodes[i] = g.Tensor(fmt.Sprintf("in%d", i), tensor.New(tensor.WithShape(s.shape...), tensor.WithBacking(datas[i])), s.grad)
	}
	y, err := op(g, nodes)
	if err != nil {
		t.Fatalf("%s: build: %v", name, err)
	}
	ys := y.Shape()
	r := randData(rng, ys.TotalSize(), false)
	target := g.Tensor("target", tensor.New(tensor.WithShape(ys...), tensor.WithBacking(r)), false)
	loss, err := g.FrameMSE(y, target, 1, ys[0], 0)
	if err != nil {
		t.Fatalf("%s: loss: %v", name, err)
	}
	var wrt []*G.Node
	var idx []int
	for i, s := range ins {
		if s.grad {
			wrt = append(wrt, nodes[i])
			idx = append(idx, i)
		}
	}
	grads, err := G.Grad(loss, wrt...)
	if err != nil {
		t.Fatalf("%s: grad: %v", name, err)
	}
	m := G.NewTapeMachine(g.G)
	defer m.Close()
	run := func() float64 {
		if err := m.RunAll(); err != nil {
			t.Fatalf("%s: run: %v", name, err)
		}
		m.Reset()
		yd := y.Value().Data().([]float32)
		var acc float64
		for j, v := range yd {
			d := float64(v) - float64(r[j])
			acc += d * d
		}
		return acc / float64(len(yd))
	}
	run()
	analytic := make([][]float32, len(grads))
	for k, gn := range grads {
		analytic[k] = append([]float32(nil), gn.Value().Data().([]float32)...)
	}
	const h = 1e-2
	for k, i := range idx {
		x := datas[i]
		picks := rng.Perm(len(x))
		if len(picks) > 24 {
			picks = picks[:24]
		}
		var num2, ana2, diff2 float64
		for _, j := range picks {
			orig := x[j]
			x[j] = orig + h
			lp := run()
			x[j] = orig - h
			lm := run()
			x[j] = orig
			// the perturbation actually applied in float32
			step := float64(orig+h) - float64(orig-h)
			n := (lp - lm) / step
			a := float64(analytic[k][j])
			num2 += n * n
			ana2 += a * a
			diff2 += (n - a) * (n - a)
		}
		rel := math.Sqrt(diff2) / math.Max(math.Max(math.Sqrt(num2), math.Sqrt(ana2)), 1e-12)
		t.Logf("%s: input %d: rel %.2g", name, i, rel)
		if rel > 1e-3 || math.IsNaN(rel) {
			t.Errorf("%s: input %d: relative gradient error %.3g > 1e-3 (|numeric| %.3g, |analytic| %.3g)", name, i, rel, math.Sqrt(num2), math.Sqrt(ana2))
		}
	}
}

func TestGradConv2D(t *testing.T) {
	cases := []struct {
		name                 string
		n, c, h, w, k, kk, s int
		pad                  int
	}{
		{"3x3 s1 p1", 2, 3, 5, 5, 4, 3, 1, 1},
		{"3x3 s2 p1 (downsample)", 2, 3, 6, 6, 2, 3, 2, 1},
		{"3x3 s2 p1 odd", 1, 2, 7, 5, 3, 3, 2, 1},
		{"1x1", 1, 4, 4, 4, 3, 1, 1, 0},
		{"3x3 p0", 1, 2, 5, 6, 2, 3, 1, 0},
	}
	for _, c := range cases {
		gradCheck(t, "conv2d "+c.name, []in{
			{shape: []int{c.n, c.c, c.h, c.w}, grad: true},
			{shape: []int{c.k, c.c, c.kk, c.kk}, grad: true},
			{shape: []int{c.k}, grad: true},
		}, func(g *Graph, x []*G.Node) (*G.Node, error) { return g.Conv2D(x[0], x[1], x[2], c.s, c.pad) })
	}
}

func TestGradTemporalConv(t *testing.T) {
	cases := []struct{ b, t, c, k, h, w int }{
		{2, 4, 3, 3, 2, 2},
		{1, 5, 2, 4, 3, 1},
		{2, 1, 3, 3, 2, 2}, // a single frame: only the centre tap
		{1, 2, 2, 2, 1, 3},
	}
	for _, c := range cases {
		gradCheck(t, fmt.Sprintf("temporal conv %+v", c), []in{
			{shape: []int{c.b * c.t, c.c, c.h, c.w}, grad: true},
			{shape: []int{c.k, c.c, 3}, grad: true},
			{shape: []int{c.k}, grad: true},
		}, func(g *Graph, x []*G.Node) (*G.Node, error) { return g.TemporalConv(x[0], x[1], x[2], c.b, c.t) })
	}
}

func TestGradGroupNorm(t *testing.T) {
	cases := []struct{ n, c, h, w, groups int }{
		{2, 4, 3, 3, 2},
		{1, 8, 12, 12, 2}, // 576 elements per group (> 256)
		{2, 6, 17, 17, 3}, // 578 per group, odd sizes
		{1, 4, 20, 20, 1}, // 1600 per group
		{3, 6, 2, 2, 6},   // one channel per group
	}
	for _, c := range cases {
		gradCheck(t, fmt.Sprintf("group norm %+v", c), []in{
			{shape: []int{c.n, c.c, c.h, c.w}, grad: true},
			{shape: []int{c.c}, grad: true, pos: true},
			{shape: []int{c.c}, grad: true},
		}, func(g *Graph, x []*G.Node) (*G.Node, error) {
			return g.GroupNorm(x[0], x[1], x[2], c.groups, DefaultGroupNormEps)
		})
	}
}

func TestGradSiLU(t *testing.T) {
	for _, s := range [][]int{{2, 3, 4, 4}, {5, 7}} {
		gradCheck(t, fmt.Sprintf("silu %v", s), []in{{shape: s, grad: true}},
			func(g *Graph, x []*G.Node) (*G.Node, error) { return g.SiLU(x[0]) })
	}
}

func TestGradLinear(t *testing.T) {
	for _, c := range []struct{ n, i, o int }{{3, 5, 4}, {1, 8, 2}, {6, 1, 3}} {
		gradCheck(t, fmt.Sprintf("linear %+v", c), []in{
			{shape: []int{c.n, c.i}, grad: true},
			{shape: []int{c.o, c.i}, grad: true},
			{shape: []int{c.o}, grad: true},
		}, func(g *Graph, x []*G.Node) (*G.Node, error) { return g.Linear(x[0], x[1], x[2]) })
	}
}

func TestGradAttention(t *testing.T) {
	cases := []struct {
		b, t, c, h, w, heads int
		temporal             bool
	}{
		{1, 2, 4, 3, 3, 2, false},
		{2, 1, 6, 2, 4, 3, false},
		{1, 1, 2, 4, 4, 1, false},
		{2, 5, 4, 2, 2, 2, true},
		{1, 3, 6, 1, 3, 1, true},
		{1, 8, 4, 2, 1, 4, true},
	}
	for _, c := range cases {
		gradCheck(t, fmt.Sprintf("attention %+v", c), []in{
			{shape: []int{c.b * c.t, 3 * c.c, c.h, c.w}, grad: true},
		}, func(g *Graph, x []*G.Node) (*G.Node, error) { return g.Attention(x[0], c.b, c.t, c.heads, c.temporal) })
	}
}

func TestGradUpsample(t *testing.T) {
	for _, s := range [][]int{{2, 3, 3, 3}, {1, 1, 2, 5}} {
		gradCheck(t, fmt.Sprintf("upsample %v", s), []in{{shape: s, grad: true}},
			func(g *Graph, x []*G.Node) (*G.Node, error) { return g.Upsample2x(x[0]) })
	}
}

func TestGradAddConcat(t *testing.T) {
	gradCheck(t, "add", []in{{shape: []int{2, 3, 2, 2}, grad: true}, {shape: []int{2, 3, 2, 2}, grad: true}},
		func(g *Graph, x []*G.Node) (*G.Node, error) { return g.Add(x[0], x[1]) })
	gradCheck(t, "add channel", []in{{shape: []int{2, 3, 2, 3}, grad: true}, {shape: []int{2, 3}, grad: true}},
		func(g *Graph, x []*G.Node) (*G.Node, error) { return g.AddChannel(x[0], x[1]) })
	gradCheck(t, "concat", []in{{shape: []int{2, 3, 2, 2}, grad: true}, {shape: []int{2, 1, 2, 2}, grad: true}},
		func(g *Graph, x []*G.Node) (*G.Node, error) { return g.Concat(x[0], x[1]) })
	// gradient to one input only: the other gets no node
	gradCheck(t, "concat one side", []in{{shape: []int{1, 2, 3, 1}}, {shape: []int{1, 2, 3, 1}, grad: true}},
		func(g *Graph, x []*G.Node) (*G.Node, error) { return g.Concat(x[0], x[1]) })
}

// A chain of ops checks that gradients compose through several kernels,
// including a sum of two paths into one node.
func TestGradChain(t *testing.T) {
	gradCheck(t, "chain", []in{
		{shape: []int{4, 2, 4, 4}, grad: true},
		{shape: []int{4, 2, 3, 3}, grad: true},
		{shape: []int{4}},
		{shape: []int{4}, grad: true, pos: true},
		{shape: []int{4}, grad: true},
	}, func(g *Graph, x []*G.Node) (*G.Node, error) {
		h, err := g.Conv2D(x[0], x[1], x[2], 1, 1)
		if err != nil {
			return nil, err
		}
		n, err := g.GroupNorm(h, x[3], x[4], 2, DefaultGroupNormEps)
		if err != nil {
			return nil, err
		}
		s, err := g.SiLU(n)
		if err != nil {
			return nil, err
		}
		return g.Add(s, h)
	})
}

func TestGradFrameMSE(t *testing.T) {
	// the loss op itself, with the first frame of each clip skipped
	rng := rand.New(rand.NewPCG(3, 3))
	s := FrameMSEShape{B: 2, T: 3, E: 5, Skip: 1}
	p := randData(rng, 30, false)
	q := randData(rng, 30, false)
	d := make([]float32, 30)
	FrameMSEBackward(d, p, q, 1, s)
	for j := range p {
		orig := p[j]
		p[j] = orig + 1e-2
		lp := float64(FrameMSE(p, q, s))
		p[j] = orig - 1e-2
		lm := float64(FrameMSE(p, q, s))
		p[j] = orig
		n := (lp - lm) / (float64(orig+1e-2) - float64(orig-1e-2))
		if math.Abs(n-float64(d[j])) > 1e-3*math.Max(1e-2, math.Abs(n)) {
			t.Errorf("mse grad[%d] = %g, numeric %g", j, d[j], n)
		}
		if (j/5)%3 == 0 && d[j] != 0 {
			t.Errorf("mse grad[%d] on a skipped frame = %g, want 0", j, d[j])
		}
	}
}
