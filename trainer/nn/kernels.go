package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file binds the plain functions to kernels: one forward kernel per
// op and one kernel per gradient it produces.

// wgrad marks a kernel producing the gradient of the weight node wrt.
type wgrad struct{ wrt *G.Node }

func (wgrad) weightGrad() {}

// WeightGradOf returns the parameter node whose gradient n computes, or nil.
func WeightGradOf(n *G.Node) *G.Node {
	o, ok := n.Op().(*Op)
	if !ok {
		return nil
	}
	switch k := o.k.(type) {
	case *conv2dFilterK:
		return k.wrt
	case *chanSumK:
		return k.wrt
	case *tconvFilterK:
		return k.wrt
	case *gnGammaK:
		return k.wrt
	case *linearWK:
		return k.wrt
	case *lnGammaK:
		return k.wrt
	}
	return nil
}

// ---- Conv2D ----

type conv2dK struct {
	s       Conv2DShape
	hasBias bool
}

func (k *conv2dK) describe() string  { return fmt.Sprintf("Conv2D%+v bias=%t", k.s, k.hasBias) }
func (k *conv2dK) out() tensor.Shape { return tensor.Shape{k.s.N, k.s.K, k.s.OutH(), k.s.OutW()} }
func (k *conv2dK) forward(dst []float32, in [][]float32) {
	var b []float32
	if k.hasBias {
		b = in[2]
	}
	Conv2DForward(dst, in[0], in[1], b, k.s)
}
func (k *conv2dK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, len(in))
	var err error
	if need[0] {
		if gs[0], err = gradOp(&conv2dDataK{s: k.s}, grad, in[1]); err != nil {
			return nil, err
		}
	}
	if need[1] {
		if gs[1], err = gradOp(&conv2dFilterK{wgrad{in[1]}, k.s}, grad, in[0]); err != nil {
			return nil, err
		}
	}
	if k.hasBias && need[2] {
		cs := ChannelShape{N: k.s.N, C: k.s.K, P: k.s.OutH() * k.s.OutW()}
		if gs[2], err = gradOp(&chanSumK{wgrad{in[2]}, cs}, grad); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

type conv2dDataK struct{ s Conv2DShape }

func (k *conv2dDataK) describe() string  { return fmt.Sprintf("Conv2DBackwardData%+v", k.s) }
func (k *conv2dDataK) out() tensor.Shape { return tensor.Shape{k.s.N, k.s.C, k.s.H, k.s.W} }
func (k *conv2dDataK) forward(dst []float32, in [][]float32) {
	Conv2DBackwardData(dst, in[0], in[1], k.s)
}

type conv2dFilterK struct {
	wgrad
	s Conv2DShape
}

func (k *conv2dFilterK) describe() string { return fmt.Sprintf("Conv2DBackwardFilter%+v", k.s) }
func (k *conv2dFilterK) out() tensor.Shape {
	return tensor.Shape{k.s.K, k.s.C, k.s.KH, k.s.KW}
}
func (k *conv2dFilterK) forward(dst []float32, in [][]float32) {
	Conv2DBackwardFilter(dst, nil, in[0], in[1], k.s)
}

// chanSumK sums an (N, C, P) gradient to (C): the gradient of a bias.
type chanSumK struct {
	wgrad
	s ChannelShape
}

func (k *chanSumK) describe() string  { return fmt.Sprintf("ChannelSum%+v", k.s) }
func (k *chanSumK) out() tensor.Shape { return tensor.Shape{k.s.C} }
func (k *chanSumK) forward(dst []float32, in [][]float32) {
	ChannelSum(dst, in[0], k.s)
}

// ChannelSum computes dst[c] = sum_{n,p} x[n,c,p]. dst is overwritten.
func ChannelSum(dst, x []float32, s ChannelShape) {
	zero(dst)
	for n := 0; n < s.N; n++ {
		for c := 0; c < s.C; c++ {
			var a float32
			for _, v := range x[(n*s.C+c)*s.P : (n*s.C+c+1)*s.P] {
				a += v
			}
			dst[c] += a
		}
	}
}

// ---- TemporalConv ----

type tconvK struct {
	s       TemporalConvShape
	hasBias bool
}

func (k *tconvK) describe() string  { return fmt.Sprintf("TemporalConv%+v bias=%t", k.s, k.hasBias) }
func (k *tconvK) out() tensor.Shape { return nil } // set by builder via outShape
func (k *tconvK) forward(dst []float32, in [][]float32) {
	var b []float32
	if k.hasBias {
		b = in[2]
	}
	TemporalConvForward(dst, in[0], in[1], b, k.s)
}

type tconvData struct {
	tconvK
	outShape tensor.Shape
}

func (k *tconvData) describe() string  { return fmt.Sprintf("TemporalConvBackwardData%+v", k.s) }
func (k *tconvData) out() tensor.Shape { return k.outShape }
func (k *tconvData) forward(dst []float32, in [][]float32) {
	TemporalConvBackwardData(dst, in[0], in[1], k.s)
}

type tconvFilterK struct {
	wgrad
	s TemporalConvShape
}

func (k *tconvFilterK) describe() string {
	return fmt.Sprintf("TemporalConvBackwardFilter%+v", k.s)
}
func (k *tconvFilterK) out() tensor.Shape { return tensor.Shape{k.s.K, k.s.C, TemporalKernel} }
func (k *tconvFilterK) forward(dst []float32, in [][]float32) {
	TemporalConvBackwardFilter(dst, nil, in[0], in[1], k.s)
}

// tconvFwd carries the 4D frame shape of its output.
type tconvFwd struct {
	tconvK
	inShape, outShape tensor.Shape
}

func (k *tconvFwd) out() tensor.Shape { return k.outShape }
func (k *tconvFwd) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, len(in))
	var err error
	if need[0] {
		if gs[0], err = gradOp(&tconvData{k.tconvK, k.inShape}, grad, in[1]); err != nil {
			return nil, err
		}
	}
	if need[1] {
		if gs[1], err = gradOp(&tconvFilterK{wgrad{in[1]}, k.s}, grad, in[0]); err != nil {
			return nil, err
		}
	}
	if k.hasBias && need[2] {
		cs := ChannelShape{N: k.s.B * k.s.T, C: k.s.K, P: k.s.P}
		if gs[2], err = gradOp(&chanSumK{wgrad{in[2]}, cs}, grad); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

// ---- GroupNorm ----

type gnK struct {
	s     GroupNormShape
	shape tensor.Shape
}

func (k *gnK) describe() string  { return fmt.Sprintf("GroupNorm%+v", k.s) }
func (k *gnK) out() tensor.Shape { return k.shape }
func (k *gnK) forward(dst []float32, in [][]float32) {
	GroupNormForward(dst, in[0], in[1], in[2], k.s)
}
func (k *gnK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, len(in))
	var err error
	if need[0] {
		if gs[0], err = gradOp(&gnDataK{*k}, grad, in[0], in[1]); err != nil {
			return nil, err
		}
	}
	if need[1] {
		if gs[1], err = gradOp(&gnGammaK{wgrad{in[1]}, k.s}, grad, in[0]); err != nil {
			return nil, err
		}
	}
	if need[2] {
		cs := ChannelShape{N: k.s.N, C: k.s.C, P: k.s.P}
		if gs[2], err = gradOp(&chanSumK{wgrad{in[2]}, cs}, grad); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

type gnDataK struct{ gnK }

func (k *gnDataK) describe() string { return fmt.Sprintf("GroupNormBackwardData%+v", k.s) }
func (k *gnDataK) forward(dst []float32, in [][]float32) {
	GroupNormBackwardData(dst, in[0], in[1], in[2], k.s)
}

type gnGammaK struct {
	wgrad
	s GroupNormShape
}

func (k *gnGammaK) describe() string  { return fmt.Sprintf("GroupNormBackwardGamma%+v", k.s) }
func (k *gnGammaK) out() tensor.Shape { return tensor.Shape{k.s.C} }
func (k *gnGammaK) forward(dst []float32, in [][]float32) {
	GroupNormBackwardParams(dst, nil, in[0], in[1], k.s)
}

// ---- SiLU ----

type siluK struct{ shape tensor.Shape }

func (k *siluK) describe() string  { return fmt.Sprintf("SiLU%v", k.shape) }
func (k *siluK) out() tensor.Shape { return k.shape }
func (k *siluK) forward(dst []float32, in [][]float32) {
	SiLUForward(dst, in[0])
}
func (k *siluK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 1)
	var err error
	if need[0] {
		gs[0], err = gradOp(&siluBwdK{k.shape}, grad, in[0])
	}
	return gs, err
}

type siluBwdK struct{ shape tensor.Shape }

func (k *siluBwdK) describe() string  { return fmt.Sprintf("SiLUBackward%v", k.shape) }
func (k *siluBwdK) out() tensor.Shape { return k.shape }
func (k *siluBwdK) forward(dst []float32, in [][]float32) {
	SiLUBackward(dst, in[0], in[1])
}

// ---- Linear ----

type linearK struct {
	s       LinearShape
	hasBias bool
	// lead holds the leading axes of a rank > 2 input (tokens (N, L, In)):
	// x is (lead..., In) and y (lead..., Out); nil means (N).
	lead tensor.Shape
}

func withLast(lead tensor.Shape, n, last int) tensor.Shape {
	if lead == nil {
		return tensor.Shape{n, last}
	}
	return append(lead.Clone(), last)
}

func (k *linearK) describe() string  { return fmt.Sprintf("Linear%+v bias=%t", k.s, k.hasBias) }
func (k *linearK) out() tensor.Shape { return withLast(k.lead, k.s.N, k.s.Out) }
func (k *linearK) forward(dst []float32, in [][]float32) {
	var b []float32
	if k.hasBias {
		b = in[2]
	}
	LinearForward(dst, in[0], in[1], b, k.s)
}
func (k *linearK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, len(in))
	var err error
	if need[0] {
		if gs[0], err = gradOp(&linearDataK{k.s, k.lead}, grad, in[1]); err != nil {
			return nil, err
		}
	}
	if need[1] {
		if gs[1], err = gradOp(&linearWK{wgrad{in[1]}, k.s}, grad, in[0]); err != nil {
			return nil, err
		}
	}
	if k.hasBias && need[2] {
		cs := ChannelShape{N: k.s.N, C: k.s.Out, P: 1}
		if gs[2], err = gradOp(&chanSumK{wgrad{in[2]}, cs}, grad); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

type linearDataK struct {
	s    LinearShape
	lead tensor.Shape
}

func (k *linearDataK) describe() string  { return fmt.Sprintf("LinearBackwardData%+v", k.s) }
func (k *linearDataK) out() tensor.Shape { return tensor.Shape{k.s.N, k.s.In} }
func (k *linearDataK) forward(dst []float32, in [][]float32) {
	LinearBackwardData(dst, in[0], in[1], k.s)
}

type linearWK struct {
	wgrad
	s LinearShape
}

func (k *linearWK) describe() string  { return fmt.Sprintf("LinearBackwardWeight%+v", k.s) }
func (k *linearWK) out() tensor.Shape { return tensor.Shape{k.s.Out, k.s.In} }
func (k *linearWK) forward(dst []float32, in [][]float32) {
	LinearBackwardParams(dst, nil, in[0], in[1], k.s)
}

// ---- Attention ----

type attnK struct {
	s    AttentionShape
	h, w int
}

func (k *attnK) describe() string { return fmt.Sprintf("Attention%+v", k.s) }
func (k *attnK) out() tensor.Shape {
	return tensor.Shape{k.s.B * k.s.T, k.s.C, k.h, k.w}
}
func (k *attnK) forward(dst []float32, in [][]float32) {
	AttentionForward(dst, in[0], k.s)
}
func (k *attnK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 1)
	var err error
	if need[0] {
		gs[0], err = gradOp(&attnBwdK{*k}, grad, in[0])
	}
	return gs, err
}

type attnBwdK struct{ attnK }

func (k *attnBwdK) describe() string { return fmt.Sprintf("AttentionBackward%+v", k.s) }
func (k *attnBwdK) out() tensor.Shape {
	return tensor.Shape{k.s.B * k.s.T, 3 * k.s.C, k.h, k.w}
}
func (k *attnBwdK) forward(dst []float32, in [][]float32) {
	AttentionBackward(dst, in[0], in[1], k.s)
}

// ---- Upsample ----

type upK struct{ s ResampleShape }

func (k *upK) describe() string  { return fmt.Sprintf("Upsample2x%+v", k.s) }
func (k *upK) out() tensor.Shape { return tensor.Shape{k.s.N, k.s.C, 2 * k.s.H, 2 * k.s.W} }
func (k *upK) forward(dst []float32, in [][]float32) {
	Upsample2xForward(dst, in[0], k.s)
}
func (k *upK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 1)
	var err error
	if need[0] {
		gs[0], err = gradOp(&upBwdK{k.s}, grad)
	}
	return gs, err
}

type upBwdK struct{ s ResampleShape }

func (k *upBwdK) describe() string  { return fmt.Sprintf("Upsample2xBackward%+v", k.s) }
func (k *upBwdK) out() tensor.Shape { return tensor.Shape{k.s.N, k.s.C, k.s.H, k.s.W} }
func (k *upBwdK) forward(dst []float32, in [][]float32) {
	Upsample2xBackward(dst, in[0], k.s)
}

// ---- Add, AddChannel, Concat ----

type addK struct{ shape tensor.Shape }

func (k *addK) describe() string  { return fmt.Sprintf("Add%v", k.shape) }
func (k *addK) out() tensor.Shape { return k.shape }
func (k *addK) forward(dst []float32, in [][]float32) {
	AddForward(dst, in[0], in[1])
}
func (k *addK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 2)
	for i := range gs {
		if need[i] {
			gs[i] = grad
		}
	}
	return gs, nil
}

type addChanK struct {
	s     ChannelShape
	shape tensor.Shape
}

func (k *addChanK) describe() string  { return fmt.Sprintf("AddChannel%+v", k.s) }
func (k *addChanK) out() tensor.Shape { return k.shape }
func (k *addChanK) forward(dst []float32, in [][]float32) {
	AddChannelForward(dst, in[0], in[1], k.s)
}
func (k *addChanK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 2)
	var err error
	if need[0] {
		gs[0] = grad
	}
	if need[1] {
		gs[1], err = gradOp(&addChanBwdK{k.s}, grad)
	}
	return gs, err
}

type addChanBwdK struct{ s ChannelShape }

func (k *addChanBwdK) describe() string  { return fmt.Sprintf("AddChannelBackward%+v", k.s) }
func (k *addChanBwdK) out() tensor.Shape { return tensor.Shape{k.s.N, k.s.C} }
func (k *addChanBwdK) forward(dst []float32, in [][]float32) {
	AddChannelBackwardBias(dst, in[0], k.s)
}

type concatK struct {
	s      ConcatShape
	h, w   int
	shapeA tensor.Shape
	shapeB tensor.Shape
}

func (k *concatK) describe() string { return fmt.Sprintf("Concat%+v", k.s) }
func (k *concatK) out() tensor.Shape {
	return tensor.Shape{k.s.N, k.s.CA + k.s.CB, k.h, k.w}
}
func (k *concatK) forward(dst []float32, in [][]float32) {
	ConcatForward(dst, in[0], in[1], k.s)
}
func (k *concatK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 2)
	var err error
	for i := 0; i < 2; i++ {
		if need[i] {
			if gs[i], err = gradOp(&splitK{*k, i}, grad); err != nil {
				return nil, err
			}
		}
	}
	return gs, nil
}

type splitK struct {
	concatK
	part int
}

func (k *splitK) describe() string { return fmt.Sprintf("ConcatBackward%+v part=%d", k.s, k.part) }
func (k *splitK) out() tensor.Shape {
	if k.part == 0 {
		return k.shapeA
	}
	return k.shapeB
}
func (k *splitK) forward(dst []float32, in [][]float32) {
	if k.part == 0 {
		ConcatBackward(dst, nil, in[0], k.s)
	} else {
		ConcatBackward(nil, dst, in[0], k.s)
	}
}

// ---- timestep embedding, loss ----

type embedK struct{ n, dim int }

func (k *embedK) describe() string  { return fmt.Sprintf("TimestepEmbedding{N:%d Dim:%d}", k.n, k.dim) }
func (k *embedK) out() tensor.Shape { return tensor.Shape{k.n, k.dim} }
func (k *embedK) forward(dst []float32, in [][]float32) {
	TimestepEmbedding(dst, in[0], k.dim)
}
func (k *embedK) grads(in G.Nodes, _, _ *G.Node, _ []bool) (G.Nodes, error) {
	return make(G.Nodes, len(in)), nil
}

type mseK struct{ s FrameMSEShape }

func (k *mseK) describe() string  { return fmt.Sprintf("FrameMSE%+v", k.s) }
func (k *mseK) out() tensor.Shape { return nil }
func (k *mseK) forward(dst []float32, in [][]float32) {
	dst[0] = FrameMSE(in[0], in[1], k.s)
}
func (k *mseK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 2)
	var err error
	if need[0] {
		gs[0], err = gradOp(&mseBwdK{k.s, in[0].Shape().Clone()}, in[0], in[1], grad)
	}
	return gs, err
}

type mseBwdK struct {
	s     FrameMSEShape
	shape tensor.Shape
}

func (k *mseBwdK) describe() string  { return fmt.Sprintf("FrameMSEBackward%+v", k.s) }
func (k *mseBwdK) out() tensor.Shape { return k.shape }
func (k *mseBwdK) forward(dst []float32, in [][]float32) {
	FrameMSEBackward(dst, in[0], in[1], in[2][0], k.s)
}
