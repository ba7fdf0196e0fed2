package cuda

import "github.com/timelapse-ml/pipeline/trainer/nn"

// SumRows computes out[r] = sum_j x[r, j] for rows of length p.
func (d *Device) SumRows(out, x *Tensor, rows, p int) error {
	if err := d.checkOperands("sum rows", operand{"out", out, rows}, operand{"x", x, rows * p}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.perRow("sum_rows", rows, TensorArg(out), TensorArg(x), IntArg(rows), IntArg(p))
}

// SumChannels computes out[c] = sum_{n,p} x[n, c, p] for an (N, C, P) tensor: the bias
// gradient of a convolution (P = OH*OW) or of a linear layer (P = 1).
func (d *Device) SumChannels(out, x *Tensor, s nn.ChannelShape) error {
	if err := d.checkOperands("sum channels", operand{"out", out, s.C}, operand{"x", x, s.Len()}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.sumChannelsLocked(out, x, s, false)
}

func (d *Device) sumChannelsLocked(out, x *Tensor, s nn.ChannelShape, accumulate bool) error {
	acc := 0
	if accumulate {
		acc = 1
	}
	return d.perRow("sum_channels", s.C, TensorArg(out), TensorArg(x), IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(acc))
}

// reducePartials is the block count of two-stage reductions.
func (d *Device) reducePartials(n int) int {
	g := d.GridFor(int64(n))
	if g > 1024 {
		g = 1024
	}
	return g
}

// Sum writes the sum of all of x's elements into out (one element), accumulated in
// float64.
func (d *Device) Sum(out, x *Tensor) error { return d.sumScaled(out, x, 1) }

// Mean writes the mean of x's elements into out (one element).

func (d *Device) sumScaled(out, x *Tensor, scale float64) error {
	n := x.Len()
	if err := d.checkOperands("sum", operand{"out", out, 1}, operand{"x", x, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	g := d.reducePartials(n)
	part, err := d.alloc.get(int64(g) * 8)
	if err != nil {
		return err
	}
	defer part.Free()
	if err := d.launch("sum_partial", g, BlockSize, PtrArg(part.Ptr), TensorArg(x), IntArg(n)); err != nil {
		return err
	}
	return d.launch("finish_sum", 1, BlockSize, TensorArg(out), PtrArg(part.Ptr), IntArg(g), F64Arg(scale))
}

// FrameMSE writes mean((pred-target)^2) over frames t >= s.Skip into loss (one
// element), accumulated in float64 (nn.FrameMSE).
func (d *Device) FrameMSE(loss, pred, target *Tensor, s nn.FrameMSEShape) error {
	n := s.B * s.T * s.E
	if err := d.checkOperands("frame mse", operand{"loss", loss, 1}, operand{"pred", pred, n}, operand{"target", target, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	g := d.reducePartials(n)
	part, err := d.alloc.get(int64(g) * 8)
	if err != nil {
		return err
	}
	defer part.Free()
	if err := d.launch("frame_mse_partial", g, BlockSize, PtrArg(part.Ptr), TensorArg(pred), TensorArg(target),
		IntArg(s.B), IntArg(s.T), IntArg(s.E), IntArg(s.Skip)); err != nil {
		return err
	}
	count := s.B * (s.T - s.Skip) * s.E
	return d.launch("finish_sum", 1, BlockSize, TensorArg(loss), PtrArg(part.Ptr), IntArg(g), F64Arg(1/float64(count)))
}

// FrameMSEBackward computes dpred = g*2*(pred-target)/count on counted frames and 0
// elsewhere (nn.FrameMSEBackward).
func (d *Device) FrameMSEBackward(dpred, pred, target *Tensor, g float32, s nn.FrameMSEShape) error {
	n := s.B * s.T * s.E
	if err := d.checkOperands("frame mse backward", operand{"dpred", dpred, n}, operand{"pred", pred, n}, operand{"target", target, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	k := 2 * g / float32(s.B*(s.T-s.Skip)*s.E)
	return d.elementwise("frame_mse_bwd", n, TensorArg(dpred), TensorArg(pred), TensorArg(target), F32Arg(k),
		IntArg(s.B), IntArg(s.T), IntArg(s.E), IntArg(s.Skip))
}
