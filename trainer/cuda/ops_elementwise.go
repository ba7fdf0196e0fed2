package cuda

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// vec4 reports whether n elements of every tensor can go as float4 (16-byte aligned).
func vec4(n int, ts ...*Tensor) bool {
	if n%4 != 0 {
		return false
	}
	for _, t := range ts {
		if t.Ptr()%16 != 0 {
			return false
		}
	}
	return true
}

// SiLUForward computes y = x*sigmoid(x) (nn.SiLUForward). y may alias x.
func (d *Device) SiLUForward(y, x *Tensor) error {
	n := x.Len()
	if err := d.checkOperands("silu", operand{"y", y, n}, operand{"x", x, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if vec4(n, y, x) {
		return d.elementwise("silu_fwd4", n/4, TensorArg(y), TensorArg(x), IntArg(n/4))
	}
	return d.elementwise("silu_fwd", n, TensorArg(y), TensorArg(x), IntArg(n))
}

// SiLUBackward computes dx from dy and x (nn.SiLUBackward).
func (d *Device) SiLUBackward(dx, dy, x *Tensor) error {
	n := x.Len()
	if err := d.checkOperands("silu backward", operand{"dx", dx, n}, operand{"dy", dy, n}, operand{"x", x, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if vec4(n, dx, dy, x) {
		return d.elementwise("silu_bwd4", n/4, TensorArg(dx), TensorArg(dy), TensorArg(x), IntArg(n/4))
	}
	return d.elementwise("silu_bwd", n, TensorArg(dx), TensorArg(dy), TensorArg(x), IntArg(n))
}

// axpby computes y = alpha*a + beta*b element-wise. y may alias a or b.
func (d *Device) axpby(y, a *Tensor, alpha float32, b *Tensor, beta float32) error {
	n := y.Len()
	if err := d.checkOperands("axpby", operand{"y", y, n}, operand{"a", a, n}, operand{"b", b, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if vec4(n, y, a, b) {
		return d.elementwise("axpby4", n/4, TensorArg(y), TensorArg(a), F32Arg(alpha), TensorArg(b), F32Arg(beta), IntArg(n/4))
	}
	return d.elementwise("axpby", n, TensorArg(y), TensorArg(a), F32Arg(alpha), TensorArg(b), F32Arg(beta), IntArg(n))
}

// Add computes y = a + b (nn.AddForward). Its backward passes dy to both inputs.
func (d *Device) Add(y, a, b *Tensor) error { return d.axpby(y, a, 1, b, 1) }

// AddChannelForward computes y[n,c,p] = x[n,c,p] + e[n,c] (nn.AddChannelForward).
func (d *Device) AddChannelForward(y, x, e *Tensor, s nn.ChannelShape) error {
	if err := d.checkOperands("add channel", operand{"y", y, s.Len()}, operand{"x", x, s.Len()}, operand{"e", e, s.N * s.C}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.elementwise("add_rowvec", s.Len(), TensorArg(y), TensorArg(x), TensorArg(e), IntArg(s.N*s.C), IntArg(s.P))
}

// AddChannelBackwardBias computes de[n,c] = sum_p dy[n,c,p] (nn.AddChannelBackwardBias).
func (d *Device) AddChannelBackwardBias(de, dy *Tensor, s nn.ChannelShape) error {
	return d.SumRows(de, dy, s.N*s.C, s.P)
}

// ConcatForward writes [a | b] along channels (nn.ConcatForward).
func (d *Device) ConcatForward(y, a, b *Tensor, s nn.ConcatShape) error {
	la, lb := s.CA*s.P, s.CB*s.P
	if err := d.checkOperands("concat", operand{"y", y, s.N * (la + lb)}, operand{"a", a, s.N * la}, operand{"b", b, s.N * lb}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.elementwise("concat2", s.N*(la+lb), TensorArg(y), TensorArg(a), TensorArg(b), IntArg(s.N), IntArg(la), IntArg(lb))
}

// ConcatBackward splits dy into da and db, either may be nil (nn.ConcatBackward).
func (d *Device) ConcatBackward(da, db, dy *Tensor, s nn.ConcatShape) error {
	la, lb := s.CA*s.P, s.CB*s.P
	ops := append([]operand{{"dy", dy, s.N * (la + lb)}}, optional(operand{"da", da, s.N * la}, operand{"db", db, s.N * lb})...)
	if err := d.checkOperands("concat backward", ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.elementwise("split2", s.N*(la+lb), TensorArg(da), TensorArg(db), TensorArg(dy), IntArg(s.N), IntArg(la), IntArg(lb))
}

// Upsample2xForward repeats each pixel into a 2x2 block (nn.Upsample2xForward).
func (d *Device) Upsample2xForward(y, x *Tensor, s nn.ResampleShape) error {
	n := s.N * s.C * s.H * s.W
	if err := d.checkOperands("upsample", operand{"y", y, 4 * n}, operand{"x", x, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.elementwise("upsample2x_fwd", 4*n, TensorArg(y), TensorArg(x), IntArg(s.N*s.C), IntArg(s.H), IntArg(s.W))
}

// Upsample2xBackward sums each 2x2 block of dy (nn.Upsample2xBackward).
func (d *Device) Upsample2xBackward(dx, dy *Tensor, s nn.ResampleShape) error {
	n := s.N * s.C * s.H * s.W
	if err := d.checkOperands("upsample backward", operand{"dx", dx, n}, operand{"dy", dy, 4 * n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.elementwise("upsample2x_bwd", n, TensorArg(dx), TensorArg(dy), IntArg(s.N*s.C), IntArg(s.H), IntArg(s.W))
}

// TimestepEmbedding writes the sinusoidal embedding of t (N) into y (N, dim)
// (nn.TimestepEmbedding).
func (d *Device) TimestepEmbedding(y, t *Tensor, dim int) error {
	n := t.Len()
	if err := d.checkOperands("timestep embedding", operand{"y", y, n * dim}, operand{"t", t, n}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.elementwise("timestep_embed", n*dim, TensorArg(y), TensorArg(t), IntArg(n), IntArg(dim))
}

// Permute writes y = x with its axes reordered: x has shape in (up to 6 axes) and
// y[i0,i1,...] = x at the index whose axis perm[k] is ik. Permute(y, x, []int{B, L, H, D},
// []int{0, 2, 1, 3}) turns (B, L, H, D) into (B, H, L, D).
func (d *Device) Permute(y, x *Tensor, in []int, perm []int) error {
	if err := d.checkPermute(y, x, in, perm); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.permuteLocked(y.Ptr(), x.Ptr(), in, perm)
}

func (d *Device) checkPermute(y, x *Tensor, in []int, perm []int) error {
	if len(in) != len(perm) || len(in) == 0 || len(in) > 6 {
		return fmt.Errorf("cuda: permute: shape %v and permutation %v must have 1 to 6 axes each", in, perm)
	}
	seen := make([]bool, len(in))
	for _, p := range perm {
		if p < 0 || p >= len(in) || seen[p] {
			return fmt.Errorf("cuda: permute: %v is not a permutation", perm)
		}
		seen[p] = true
	}
	n := numel(in)
	return d.checkOperands("permute", operand{"y", y, n}, operand{"x", x, n})
}

// permuteLocked launches the permutation of a checked shape; the context is current.
func (d *Device) permuteLocked(y, x uintptr, in []int, perm []int) error {
	if done, err := d.permuteSwapLocked(y, x, in, perm); done {
		return err
	}
	stride := make([]int, len(in))
	acc := 1
	for i := len(in) - 1; i >= 0; i-- {
		stride[i] = acc
		acc *= in[i]
	}
	var od, is [6]int
	pad := 6 - len(in)
	for k := 0; k < pad; k++ {
		od[k] = 1
	}
	for k, p := range perm {
		od[pad+k], is[pad+k] = in[p], stride[p]
	}
	args := []Arg{PtrArg(y), PtrArg(x)}
	for _, v := range od {
		args = append(args, IntArg(v))
	}
	for _, v := range is {
		args = append(args, IntArg(v))
	}
	return d.elementwise("permute6", numel(in), args...)
}
