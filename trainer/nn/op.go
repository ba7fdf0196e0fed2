package nn

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernel is one op's CPU computation on flat float32 slices.
type kernel interface {
	// describe names the kernel and every attribute, for hashing.
	describe() string
	// out is the output shape; an empty shape is a float32 scalar.
	out() tensor.Shape
	// forward overwrites dst from the inputs.
	forward(dst []float32, in [][]float32)
}

// diffKernel is a kernel that builds gradient nodes for its inputs.
type diffKernel interface {
	kernel
	// grads returns, for each input i with need[i], a node holding
	// d(loss)/d(input i) given grad = d(loss)/d(output); other entries nil.
	grads(in G.Nodes, out, grad *G.Node, need []bool) (G.Nodes, error)
}

// Op is the gorgonia.Op wrapping every kernel of this package. Its output
// buffer is owned by the op and reused from one run of the graph to the
// next (a value read from a node is valid until the graph runs again).
type Op struct {
	k      kernel
	inDims []int
	need   []bool // nil: not differentiable (gradient ops)
	buf    G.Value
}

// Need reports which inputs the op sends gradients to.
func (o *Op) Need() []bool { return append([]bool(nil), o.need...) }

func (o *Op) Arity() int { return len(o.inDims) }

func typeOfDims(d int) hm.Type {
	if d == 0 {
		return tensor.Float32
	}
	return G.TensorType{Dims: d, Of: tensor.Float32}
}

func (o *Op) Type() hm.Type {
	ts := make([]hm.Type, 0, len(o.inDims)+1)
	for _, d := range o.inDims {
		ts = append(ts, typeOfDims(d))
	}
	ts = append(ts, typeOfDims(len(o.k.out())))
	return hm.NewFnType(ts...)
}

func (o *Op) InferShape(...G.DimSizer) (tensor.Shape, error) {
	s := o.k.out()
	if len(s) == 0 {
		return tensor.ScalarShape(), nil
	}
	return s.Clone(), nil
}

// floats returns the float32 backing slice of a value.
func floats(v G.Value) ([]float32, error) {
	switch t := v.(type) {
	case *G.F32:
		return []float32{float32(*t)}, nil
	case tensor.Tensor:
		d, ok := t.Data().([]float32)
		if !ok {
			if f, ok := t.Data().(float32); ok {
				return []float32{f}, nil
			}
			return nil, fmt.Errorf("nn: want float32 data, got %T", t.Data())
		}
		return d, nil
	default:
		return nil, fmt.Errorf("nn: unsupported value type %T", v)
	}
}

func (o *Op) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != len(o.inDims) {
		return nil, fmt.Errorf("nn: %s: got %d inputs, want %d", o.k.describe(), len(vals), len(o.inDims))
	}
	in := make([][]float32, len(vals))
	for i, v := range vals {
		f, err := floats(v)
		if err != nil {
			return nil, fmt.Errorf("nn: %s input %d: %w", o.k.describe(), i, err)
		}
		in[i] = f
	}
	shp := o.k.out()
	if len(shp) == 0 {
		var dst [1]float32
		o.k.forward(dst[:], in)
		return G.NewF32(dst[0]), nil
	}
	if o.buf == nil {
		o.buf = tensor.New(tensor.WithShape(shp...), tensor.Of(tensor.Float32))
	}
	dst := o.buf.Data().([]float32)
	o.k.forward(dst, in)
	return o.buf, nil
}

func (o *Op) ReturnsPtr() bool     { return false }
func (o *Op) CallsExtern() bool    { return false }
func (o *Op) OverwritesInput() int { return -1 }

func (o *Op) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "nn.%s need=%v", o.k.describe(), o.need)
}

func (o *Op) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

func (o *Op) String() string { return o.k.describe() }

// DiffWRT reports the inputs gradients are built for.
func (o *Op) DiffWRT(n int) []bool {
	out := make([]bool, n)
	copy(out, o.need)
	return out
}

// SymDiff builds the gradient nodes of the needed inputs.
func (o *Op) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dk, ok := o.k.(diffKernel)
	if !ok || o.need == nil {
		return nil, fmt.Errorf("nn: %s is not differentiable", o.k.describe())
	}
	gs, err := dk.grads(inputs, output, grad, o.need)
	if err != nil {
		return nil, fmt.Errorf("nn: gradient of %s: %w", o.k.describe(), err)
	}
	return gs, nil
}

// apply adds a kernel to the graph. need is nil for gradient kernels.
func apply(k kernel, need []bool, in ...*G.Node) (*G.Node, error) {
	dims := make([]int, len(in))
	for i, n := range in {
		dims[i] = n.Dims()
	}
	n, err := G.ApplyOp(&Op{k: k, inDims: dims, need: need}, in...)
	if err != nil {
		return nil, fmt.Errorf("nn: %s: %w", k.describe(), err)
	}
	return n, nil
}

// gradOp adds a non-differentiable gradient kernel.
func gradOp(k kernel, in ...*G.Node) (*G.Node, error) { return apply(k, nil, in...) }

// WeightGrad is implemented by kernels that compute the gradient of a
// weight (parameter) input, so tests and executors can find them.
type WeightGrad interface {
	weightGrad()
}

// IsWeightGrad reports whether a graph node computes a parameter gradient.
func IsWeightGrad(n *G.Node) bool {
	o, ok := n.Op().(*Op)
	if !ok {
		return false
	}
	_, ok = o.k.(WeightGrad)
	return ok
}
