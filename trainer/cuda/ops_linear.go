package cuda

import "github.com/timelapse-ml/pipeline/trainer/nn"

// LinearForward computes y = x Wᵀ + b for x (N, In), W (Out, In) (nn.LinearForward).
// b may be nil.
func (d *Device) LinearForward(y, x, w, b *Tensor, s nn.LinearShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	ops := append([]operand{{"y", y, s.N * s.Out}, {"x", x, s.N * s.In}, {"w", w, s.Out * s.In}}, optional(operand{"b", b, s.Out})...)
	if err := d.checkOperands("linear", ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.gemmLocked(Gemm{TransB: true, M: s.N, N: s.Out, K: s.In, Alpha: 1, A: x.Ptr(), B: w.Ptr(), C: y.Ptr(), Batch: 1}); err != nil {
		return err
	}
	if b != nil {
		return d.elementwise("add_bias_ncp", s.N*s.Out, TensorArg(y), TensorArg(b), IntArg(s.N), IntArg(s.Out), IntArg(1))
	}
	return nil
}

// LinearBackwardData computes dx = dy W (nn.LinearBackwardData).
func (d *Device) LinearBackwardData(dx, dy, w *Tensor, s nn.LinearShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := d.checkOperands("linear backward data", operand{"dx", dx, s.N * s.In}, operand{"dy", dy, s.N * s.Out}, operand{"w", w, s.Out * s.In}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.gemmLocked(Gemm{M: s.N, N: s.In, K: s.Out, Alpha: 1, A: dy.Ptr(), B: w.Ptr(), C: dx.Ptr(), Batch: 1})
}

// LinearBackwardParams computes dw = dyᵀ x and db = sum_n dy, either may be nil
// (nn.LinearBackwardParams).
func (d *Device) LinearBackwardParams(dw, db, dy, x *Tensor, s nn.LinearShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	ops := append([]operand{{"dy", dy, s.N * s.Out}, {"x", x, s.N * s.In}}, optional(operand{"dw", dw, s.Out * s.In}, operand{"db", db, s.Out})...)
	if err := d.checkOperands("linear backward params", ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if dw != nil {
		if err := d.gemmLocked(Gemm{TransA: true, M: s.Out, N: s.In, K: s.N, Alpha: 1, A: dy.Ptr(), B: x.Ptr(), C: dw.Ptr(), Batch: 1}); err != nil {
			return err
		}
	}
	if db != nil {
		return d.sumChannelsLocked(db, dy, nn.ChannelShape{N: s.N, C: s.Out, P: 1}, false)
	}
	return nil
}
