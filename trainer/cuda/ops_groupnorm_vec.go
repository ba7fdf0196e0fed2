package cuda

import (
	"os"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// The vectorised group norm (kernels/groupnorm_vec.cu) takes the shapes
// of the SD UNet's per-frame norms (P = h*w a multiple of 4, N*Groups
// enough blocks to fill the GPU): one block per (sample, group) with
// float4 accesses and the statistics in one pass; the backward's
// statistics, sums and data gradient in one kernel of two passes (the
// first pass also takes the statistics when none were kept). The scalar
// kernels of ops_groupnorm.go keep every other shape and the parameter
// gradients. PIPELINE_GN_VEC=0 turns it off (for comparisons).
var gnVecOn = os.Getenv("PIPELINE_GN_VEC") != "0"

// gnVec reports whether the vectorised kernels take shape s over tensors ts
// (nil ones are skipped).
func (d *Device) gnVec(s nn.GroupNormShape, ts ...*Tensor) bool {
	if !gnVecOn || s.P%4 != 0 || s.N*s.Groups < 2*d.sms {
		return false
	}
	for _, t := range ts {
		if t != nil && t.Ptr()%16 != 0 {
			return false
		}
	}
	return true
}

// gnVecForwardLocked writes y = groupnorm(x) (silu(groupnorm(x)) with silu)
// and the statistics into st; the context is current.
func (d *Device) gnVecForwardLocked(y, x, gamma, beta *Tensor, st *GroupNormStats, s nn.GroupNormShape, silu bool) error {
	return d.perRow("gnv_fwd", s.N*s.Groups, TensorArg(y), TensorArg(st.Mean), TensorArg(st.Rstd), TensorArg(x), TensorArg(gamma), TensorArg(beta),
		IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups), F32Arg(s.Eps), IntArg(b2i(silu)))
}

// gnVecBackwardLocked writes (or adds, with acc) dx; st nil takes the
// statistics from x (not with silu). The context is current.
func (d *Device) gnVecBackwardLocked(dx, dy, x, gamma, beta *Tensor, st *GroupNormStats, s nn.GroupNormShape, silu, acc bool) error {
	var mean, rstd Arg
	if st != nil {
		mean, rstd = TensorArg(st.Mean), TensorArg(st.Rstd)
	}
	if !silu {
		beta = nil
	}
	return d.perRow("gnv_bwd", s.N*s.Groups, TensorArg(dx), TensorArg(dy), TensorArg(x), TensorArg(gamma), TensorArg(beta), mean, rstd,
		IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups), F32Arg(s.Eps), IntArg(b2i(silu)), IntArg(b2i(acc)))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// GNBackwardData says what GroupNormBackwardDataTo computes.
type GNBackwardData struct {
	// SiLU: dy is the gradient of silu(groupnorm(x)) (the fused
	// GroupNorm+SiLU; beta and the forward statistics are required).
	SiLU bool
	// Accumulate: dx += the gradient instead of dx = it.
	Accumulate bool
}

// GroupNormBackwardDataTo computes the data gradient of a group norm (of a
// GroupNorm+SiLU with o.SiLU) into dx, or adds it to dx with o.Accumulate:
// one kernel where the vectorised path takes the shape, else the scalar
// kernels into a scratch buffer and an add. st holds the forward
// statistics (nil recomputes them; required with o.SiLU); beta is read
// only with o.SiLU.
func (d *Device) GroupNormBackwardDataTo(dx, dy, x, gamma, beta *Tensor, st *GroupNormStats, s nn.GroupNormShape, o GNBackwardData) error {
	if o.SiLU {
		if err := d.checkGNSiLU("group norm silu backward", s, st, operand{"dx", dx, s.Len()}, operand{"dy", dy, s.Len()},
			operand{"x", x, s.Len()}, operand{"gamma", gamma, s.C}, operand{"beta", beta, s.C}); err != nil {
			return err
		}
	} else {
		if err := s.Validate(); err != nil {
			return err
		}
		ops := []operand{{"dx", dx, s.Len()}, {"dy", dy, s.Len()}, {"x", x, s.Len()}, {"gamma", gamma, s.C}}
		if st != nil {
			ops = append(ops, operand{"mean", st.Mean, s.N * s.Groups}, operand{"rstd", st.Rstd, s.N * s.Groups})
		}
		if err := d.checkOperands("group norm backward", ops...); err != nil {
			return err
		}
	}
	if d.gnVec(s, dx, dy, x) {
		if err := d.enter(); err != nil {
			return err
		}
		defer d.leave()
		return d.gnVecBackwardLocked(dx, dy, x, gamma, beta, st, s, o.SiLU, o.Accumulate)
	}
	out := dx
	if o.Accumulate {
		t, err := d.NewTensor(dx.Shape...)
		if err != nil {
			return err
		}
		defer t.Free()
		out = t
	}
	var err error
	if o.SiLU {
		err = d.GroupNormSiLUBackwardData(out, dy, x, gamma, beta, st, s)
	} else {
		err = d.GroupNormBackward(out, nil, nil, dy, x, gamma, st, s)
	}
	if err != nil || !o.Accumulate {
		return err
	}
	return d.Add(dx, dx, out)
}
