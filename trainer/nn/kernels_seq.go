package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Kernels of the token-sequence ops: layer norm, GEGLU, sequence
// attention, axis swaps and the diffusers timestep projection.

// ---- LayerNorm ----

type lnK struct {
	s     LayerNormShape
	shape tensor.Shape
}

func (k *lnK) describe() string  { return fmt.Sprintf("LayerNorm%+v", k.s) }
func (k *lnK) out() tensor.Shape { return k.shape }
func (k *lnK) forward(dst []float32, in [][]float32) {
	LayerNormForward(dst, in[0], in[1], in[2], k.s)
}
func (k *lnK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, len(in))
	var err error
	if need[0] {
		if gs[0], err = gradOp(&lnDataK{*k}, grad, in[0], in[1]); err != nil {
			return nil, err
		}
	}
	if need[1] {
		if gs[1], err = gradOp(&lnGammaK{wgrad{in[1]}, k.s}, grad, in[0]); err != nil {
			return nil, err
		}
	}
	if need[2] {
		cs := ChannelShape{N: k.s.M, C: k.s.D, P: 1}
		if gs[2], err = gradOp(&chanSumK{wgrad{in[2]}, cs}, grad); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

type lnDataK struct{ lnK }

func (k *lnDataK) describe() string { return fmt.Sprintf("LayerNormBackwardData%+v", k.s) }
func (k *lnDataK) forward(dst []float32, in [][]float32) {
	LayerNormBackwardData(dst, in[0], in[1], in[2], k.s)
}

type lnGammaK struct {
	wgrad
	s LayerNormShape
}

func (k *lnGammaK) describe() string  { return fmt.Sprintf("LayerNormBackwardGamma%+v", k.s) }
func (k *lnGammaK) out() tensor.Shape { return tensor.Shape{k.s.D} }
func (k *lnGammaK) forward(dst []float32, in [][]float32) {
	LayerNormBackwardParams(dst, nil, in[0], in[1], k.s)
}

// ---- GEGLU ----

type gegluK struct {
	s              GEGLUShape
	inShape, shape tensor.Shape
}

func (k *gegluK) describe() string  { return fmt.Sprintf("GEGLU%+v", k.s) }
func (k *gegluK) out() tensor.Shape { return k.shape }
func (k *gegluK) forward(dst []float32, in [][]float32) {
	GEGLUForward(dst, in[0], k.s)
}
func (k *gegluK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 1)
	var err error
	if need[0] {
		gs[0], err = gradOp(&gegluBwdK{*k}, grad, in[0])
	}
	return gs, err
}

type gegluBwdK struct{ gegluK }

func (k *gegluBwdK) describe() string  { return fmt.Sprintf("GEGLUBackward%+v", k.s) }
func (k *gegluBwdK) out() tensor.Shape { return k.inShape }
func (k *gegluBwdK) forward(dst []float32, in [][]float32) {
	GEGLUBackward(dst, in[0], in[1], k.s)
}

// ---- sequence attention ----

type seqAttnK struct {
	s              SeqAttentionShape
	qShape, kShape tensor.Shape
}

func (k *seqAttnK) describe() string  { return fmt.Sprintf("SeqAttention%+v", k.s) }
func (k *seqAttnK) out() tensor.Shape { return k.qShape }
func (k *seqAttnK) forward(dst []float32, in [][]float32) {
	SeqAttentionForward(dst, in[0], in[1], in[2], k.s)
}
func (k *seqAttnK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 3)
	for i := 0; i < 3; i++ {
		if !need[i] {
			continue
		}
		var err error
		if gs[i], err = gradOp(&seqAttnBwdK{*k, i}, grad, in[0], in[1], in[2]); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

// seqAttnBwdK computes the gradient of input Part (0 q, 1 k, 2 v) from
// dout, q, k, v.
type seqAttnBwdK struct {
	seqAttnK
	part int
}

func (k *seqAttnBwdK) describe() string {
	return fmt.Sprintf("SeqAttentionBackward%+v part=%d", k.s, k.part)
}
func (k *seqAttnBwdK) out() tensor.Shape {
	if k.part == 0 {
		return k.qShape
	}
	return k.kShape
}
func (k *seqAttnBwdK) forward(dst []float32, in [][]float32) {
	d := [3][]float32{}
	d[k.part] = dst
	SeqAttentionBackward(d[0], d[1], d[2], in[0], in[1], in[2], in[3], k.s)
}

// ---- axis swap ----

type swapK struct {
	s     SwapShape
	shape tensor.Shape // output
	back  tensor.Shape // input
}

func (k *swapK) describe() string  { return fmt.Sprintf("SwapAxes%+v out=%v", k.s, k.shape) }
func (k *swapK) out() tensor.Shape { return k.shape }
func (k *swapK) forward(dst []float32, in [][]float32) {
	SwapAxesForward(dst, in[0], k.s)
}
func (k *swapK) grads(in G.Nodes, _, grad *G.Node, need []bool) (G.Nodes, error) {
	gs := make(G.Nodes, 1)
	var err error
	if need[0] {
		gs[0], err = gradOp(&swapK{s: k.s.Inverse(), shape: k.back, back: k.shape}, grad)
	}
	return gs, err
}

// ---- diffusers timestep projection ----

type sinEmbedK struct{ s SinusoidalShape }

func (k *sinEmbedK) describe() string  { return fmt.Sprintf("SinusoidalEmbedding%+v", k.s) }
func (k *sinEmbedK) out() tensor.Shape { return tensor.Shape{k.s.N, k.s.Dim} }
func (k *sinEmbedK) forward(dst []float32, in [][]float32) {
	SinusoidalEmbedding(dst, in[0], k.s)
}
func (k *sinEmbedK) grads(in G.Nodes, _, _ *G.Node, _ []bool) (G.Nodes, error) {
	return make(G.Nodes, len(in)), nil
}
