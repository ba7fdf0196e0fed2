package gpu

import (
	"os"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// The trainable temporal convolutions in the half precisions (and the
// trainable linear layers in fp16) run as PyTorch's autocast runs them:
// their products read 16-bit operands (the precision's type) and
// accumulate in float32, with float32 outputs and float32 weight
// gradients. The 16-bit weight is converted from the float32 master copy
// each time a pass reads it (as autocast casts a weight at each use), so
// no 16-bit copy is kept between passes and none can go stale after an
// optimizer update; the memory it adds is one layer's 16-bit weight and
// activation copies at a time (a few tens of MB at SD size). Bias
// additions, the bias gradient (a channel sum of the float32 output
// gradient) and everything outside the products stay float32, except
// that the temporal convolutions' fast path (tconv_fast.go) adds the bias
// inside its GEMM as two 16-bit parts (16 significant bits of it).
// PIPELINE_SD_T16=0 keeps these layers' products float32 (TF32 where the
// device allows it).
var temporal16 = os.Getenv("PIPELINE_SD_T16") != "0"

// t16Linear says in which half precisions the trainable linear layers run
// on 16-bit operands too. In bf16 they stay float32: on the recipe's
// fixture (TestSDT16Accuracy, H200 2026-12-02) their 16-bit products raised
// bf16's worst temporal gradient error from 7.1e-2 to 9.2e-2 (the temporal
// attention's projections and norm), and at SD size they are memory-bound:
// 16-bit operands made their forward slower (the activation conversion,
// 5.4 -> 7.0 ms a step) and their backward faster (18.8 -> 15.7 ms), so
// float32 costs 1.1 ms a step (487.2 vs 486.1 ms). In fp16 they cost no
// accuracy (worst 6.1e-3 vs 5.6e-3).
var t16Linear = map[Precision]bool{FP16: true, BF16: false}

// t16Conv: false keeps the temporal convolutions' products float32 (for
// the accuracy tests).
var t16Conv = true

// halfBackwardData runs the frozen layers' backward-data products on 16-bit
// operands (the output gradient rounded to the precision's type); false
// widens their 16-bit weights to float32 and keeps those products float32
// (for the accuracy tests: it tells how much of the half modes' gradient
// error the rounded gradients make).
var halfBackwardData = true

// t16 reports whether layer l (a linear layer or a temporal convolution)
// has a trainable weight whose products run on 16-bit operands.
func (s *SDNet) t16(l model.Layer) bool {
	if !temporal16 || !s.prec.Half() || (l.Kind == model.Linear && !t16Linear[s.prec]) || (l.Kind == model.TemporalConv && !t16Conv) {
		return false
	}
	return len(l.Params) > 0 && s.weights[l.Params[0]] != nil && s.p.trainable[l.Params[0]]
}

// linearHalfWeight returns layer l's weight in 16 bits, or nil when its
// products are float32: the stored copy of a frozen weight, or a fresh
// conversion of a trainable one's float32 master (free releases it).
func (s *SDNet) linearHalfWeight(l model.Layer) (w *cuda.Tensor, free func(), err error) {
	if w := s.halfW[l.Params[0]]; w != nil {
		return w, func() {}, nil
	}
	if !s.t16(l) {
		return nil, func() {}, nil
	}
	w, err = s.toHalfOf(s.param(l, 0), s.prec.dataType())
	if err != nil {
		return nil, nil, err
	}
	return w, w.Free, nil
}

// linearBackwardT16 is a trainable linear layer's backward pass on 16-bit
// operands: dx = dy W (when dataGrad asks for it), dW = dyᵀ x, both float32;
// db the float32 row sum of dy.
func (s *SDNet) linearBackwardT16(l model.Layer, dy, x *cuda.Tensor, ls nn.LinearShape, dataGrad func(int, func(*cuda.Tensor) error) error) error {
	t := s.prec.dataType()
	dyh, err := s.toHalfOf(dy, t)
	if err != nil {
		return err
	}
	defer dyh.Free()
	dataProduct := func(dx *cuda.Tensor, beta float32) error {
		w, err := s.toHalfOf(s.param(l, 0), t)
		if err != nil {
			return err
		}
		defer w.Free()
		return s.dev.GemmEx(gemmHalf(cuda.Gemm{M: ls.N, N: ls.In, K: ls.Out, Alpha: 1, Beta: beta, A: dyh.Ptr(), B: w.Ptr(), C: dx.Ptr(), Batch: 1}, t, cuda.TypeF32))
	}
	if tlinearFast {
		err = s.dataGradInto(l, 0, dataProduct)
	} else {
		err = dataGrad(0, func(dx *cuda.Tensor) error { return dataProduct(dx, 0) })
	}
	if err != nil {
		return err
	}
	if dw := s.wgrad(l, 0); dw != nil {
		xh, freeX, err := s.halfOf(l.In[0], x, t) // the forward's copy (sd_saved.go)
		if err != nil {
			return err
		}
		if tlinearFast {
			err = linearWeightGrad(s.tc, tconvOps(t), dw.Ptr(), dyh.Ptr(), xh.Ptr(), ls.N, ls.Out, ls.In)
		} else {
			err = s.dev.GemmEx(gemmHalf(cuda.Gemm{TransA: true, M: ls.Out, N: ls.In, K: ls.N, Alpha: 1, A: dyh.Ptr(), B: xh.Ptr(), C: dw.Ptr(), Batch: 1}, t, cuda.TypeF32))
		}
		freeX()
		if err != nil {
			return err
		}
	}
	if db := s.wgrad(l, 1); db != nil {
		if tlinearFast {
			return linearBiasGrad(s.tc, db.Ptr(), dy.Ptr(), ls.N, ls.Out)
		}
		return s.dev.SumChannels(db, dy, nn.ChannelShape{N: ls.N, C: ls.Out, P: 1})
	}
	return nil
}

// tlinearFast: the trainable linear layers' backward accumulates dx into
// the gradient already there (beta 1: no separate add pass where q, k and
// v share an input), computes dW as a split-K product (the 320x320 result
// of a 102,400-row reduction has only 9 tiles of its own) and db in two
// coalesced column-sum passes (sum_channels with P = 1 reads a column per
// block, strided). PIPELINE_SD_TLIN_FAST=0: the earlier passes.
var tlinearFast = os.Getenv("PIPELINE_SD_TLIN_FAST") != "0"

// dataGradInto computes input j's gradient with f: into the gradient
// already accumulated there (beta 1), or into a fresh buffer (beta 0).
func (s *SDNet) dataGradInto(l model.Layer, j int, f func(dx *cuda.Tensor, beta float32) error) error {
	v := l.In[j]
	if !s.p.reqGrad[v] {
		return nil
	}
	if cur := s.grads[v]; cur != nil {
		return f(cur, 1)
	}
	dx, err := s.dev.NewTensor(s.p.shapes[v]...)
	if err != nil {
		return err
	}
	if err := f(dx, 0); err != nil {
		dx.Free()
		return err
	}
	s.grads[v] = dx
	return nil
}

// linearTrainableFast reports whether layer l's backward runs
// linearBackwardTrainable: a trainable float32 weight.
func (s *SDNet) linearTrainableFast(l model.Layer) bool {
	return tlinearFast && s.wgrad(l, 0) != nil && s.halfW[l.Params[0]] == nil
}

// linearBackwardTrainable is the backward pass of a linear layer with a
// trainable float32 weight (tlinearFast).
func (s *SDNet) linearBackwardTrainable(l model.Layer, dy, x *cuda.Tensor, ls nn.LinearShape) error {
	err := s.dataGradInto(l, 0, func(dx *cuda.Tensor, beta float32) error {
		return s.dev.Gemm(cuda.Gemm{M: ls.N, N: ls.In, K: ls.Out, Alpha: 1, Beta: beta, A: dy.Ptr(), B: s.param(l, 0).Ptr(), C: dx.Ptr(), Batch: 1})
	})
	if dw := s.wgrad(l, 0); err == nil && dw != nil {
		err = linearWeightGrad(s.tc, tconvF32, dw.Ptr(), dy.Ptr(), x.Ptr(), ls.N, ls.Out, ls.In)
	}
	if db := s.wgrad(l, 1); err == nil && db != nil {
		err = linearBiasGrad(s.tc, db.Ptr(), dy.Ptr(), ls.N, ls.Out)
	}
	return err
}

// tconvHalfWeight returns the temporal convolution's weight rearranged for
// its forward products (W', K x 3C) or, with data, for its backward-data
// products (C x 3K), in 16 bits.
func (s *SDNet) tconvHalfWeight(l model.Layer, ts nn.TemporalConvShape, data bool) (*cuda.Tensor, error) {
	f, err := s.dev.NewTensor(ts.K * 3 * ts.C)
	if err != nil {
		return nil, err
	}
	defer f.Free()
	w := s.param(l, 0).Ptr()
	if data {
		err = s.tc.wdata(f.Ptr(), w, ts.K, ts.C)
	} else {
		err = s.tc.wfwd(f.Ptr(), w, ts.K, ts.C)
	}
	if err != nil {
		return nil, err
	}
	return s.toHalfOf(f, s.prec.dataType())
}

// tconvForwardLayer is y = tconv(x, w) + b for layer l.
func (s *SDNet) tconvForwardLayer(l model.Layer, y, x *cuda.Tensor) error {
	ts := s.tconvShape(l)
	b := tptr(s.param(l, 1))
	if !s.t16(l) {
		return tconvForward(s.tc, y.Ptr(), x.Ptr(), s.param(l, 0).Ptr(), b, ts)
	}
	ops := tconvOps(s.prec.dataType())
	if tconvFastOK(ts) {
		return tconvForwardHalf(s.tc, ops, y.Ptr(), x.Ptr(), s.param(l, 0).Ptr(), b, ts)
	}
	xh, freeX, err := s.halfOf(l.In[0], x, s.prec.dataType()) // kept for the backward (sd_saved.go)
	if err != nil {
		return err
	}
	defer freeX()
	wh, err := s.tconvHalfWeight(l, ts, false)
	if err != nil {
		return err
	}
	defer wh.Free()
	if err := tconvGemm3(s.tc, ops, y.Ptr(), xh.Ptr(), wh.Ptr(), ts.K, ts.C, ts.B, ts.T, ts.P); err != nil {
		return err
	}
	if b == 0 {
		return nil
	}
	return s.tc.bias(y.Ptr(), b, int64(ts.B*ts.T), ts.K, ts.P)
}

// tconvBackwardLayer is the temporal convolution's backward pass: dx
// (through dataGrad), dw and db.
func (s *SDNet) tconvBackwardLayer(l model.Layer, dy, x *cuda.Tensor, dataGrad func(int, func(*cuda.Tensor) error) error) error {
	ts := s.tconvShape(l)
	var err error
	if !s.t16(l) {
		err = dataGrad(0, func(dx *cuda.Tensor) error {
			return tconvBackwardData(s.tc, dx.Ptr(), dy.Ptr(), s.param(l, 0).Ptr(), ts)
		})
		if dw := s.wgrad(l, 0); err == nil && dw != nil {
			err = tconvBackwardFilter(s.tc, dw.Ptr(), dy.Ptr(), x.Ptr(), ts)
		}
	} else if tconvFastOK(ts) {
		return s.tconvBackwardFast(l, ts, dy, x, dataGrad)
	} else {
		err = s.tconvBackwardT16(l, ts, dy, x, dataGrad)
	}
	if db := s.wgrad(l, 1); err == nil && db != nil {
		n, c, h, w := s.frame(l.Out)
		err = s.dev.SumChannels(db, dy, nn.ChannelShape{N: n, C: c, P: h * w})
	}
	return err
}

// tconvBackwardFast is the 16-bit backward pass of tconv_fast.go: dx,
// dw and db from one conversion pass over dy.
func (s *SDNet) tconvBackwardFast(l model.Layer, ts nn.TemporalConvShape, dy, x *cuda.Tensor, dataGrad func(int, func(*cuda.Tensor) error) error) error {
	ops := tconvOps(s.prec.dataType())
	dw, db := s.wgrad(l, 0), s.wgrad(l, 1)
	g, err := tconvSplitGrad(s.tc, ops, dy.Ptr(), ts, s.p.reqGrad[l.In[0]], dw != nil, db != nil)
	if err != nil {
		return err
	}
	defer g.free()
	err = dataGrad(0, func(dx *cuda.Tensor) error {
		wh, err := s.tconvHalfWeight(l, ts, true)
		if err != nil {
			return err
		}
		defer wh.Free()
		return g.data(s.tc, dx.Ptr(), wh.Ptr())
	})
	if err == nil && dw != nil {
		err = g.filter(s.tc, dw.Ptr(), x.Ptr())
	}
	if err == nil && db != nil {
		err = g.bias(s.tc, db.Ptr())
	}
	return err
}

func (s *SDNet) tconvBackwardT16(l model.Layer, ts nn.TemporalConvShape, dy, x *cuda.Tensor, dataGrad func(int, func(*cuda.Tensor) error) error) error {
	t := s.prec.dataType()
	ops := tconvOps(t)
	dyh, err := s.toHalfOf(dy, t)
	if err != nil {
		return err
	}
	defer dyh.Free()
	err = dataGrad(0, func(dx *cuda.Tensor) error {
		wh, err := s.tconvHalfWeight(l, ts, true)
		if err != nil {
			return err
		}
		defer wh.Free()
		return tconvGemm3(s.tc, ops, dx.Ptr(), dyh.Ptr(), wh.Ptr(), ts.C, ts.K, ts.B, ts.T, ts.P)
	})
	if err != nil {
		return err
	}
	dw := s.wgrad(l, 0)
	if dw == nil {
		return nil
	}
	xh, freeX, err := s.halfOf(l.In[0], x, t) // the forward's copy (sd_saved.go)
	if err != nil {
		return err
	}
	defer freeX()
	return tconvBackwardFilterOps(s.tc, ops, dw.Ptr(), dyh.Ptr(), xh.Ptr(), ts)
}

// widenedWeight returns a float32 copy of the frozen 16-bit weight of
// layer l in the float32 layout ((Out, In) for a linear layer, (K, C, KH,
// KW) for a convolution), or nil when halfBackwardData is on or the weight
// is float32.
func (s *SDNet) widenedWeight(l model.Layer) (*cuda.Tensor, error) {
	h := s.halfW[l.Params[0]]
	if halfBackwardData || h == nil {
		return nil, nil
	}
	shape := s.halfShape[l.Params[0]]
	w, err := s.dev.NewTensor(shape...)
	if err != nil {
		return nil, err
	}
	if err := s.dev.FromHalf(w, h, s.prec.dataType()); err != nil {
		w.Free()
		return nil, err
	}
	if len(shape) != 4 || !convNHWC {
		return w, nil
	}
	// (K, KH, KW, C) -> (K, C, KH, KW)
	defer w.Free()
	nchw, err := s.dev.NewTensor(shape...)
	if err != nil {
		return nil, err
	}
	if err := s.dev.Permute(nchw, w, []int{shape[0], shape[2] * shape[3], shape[1]}, []int{0, 2, 1}); err != nil {
		nchw.Free()
		return nil, err
	}
	return nchw, nil
}
