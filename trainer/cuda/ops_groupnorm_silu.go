package cuda

import "github.com/timelapse-ml/pipeline/trainer/nn"

// A GroupNorm whose output only feeds a SiLU runs fused with it: the forward pass
// writes silu(groupnorm(x)) straight from x and the group statistics, so the
// normalised tensor is never written, read back or kept; the backward passes
// recompute it from x inside the kernels that compute dx, dgamma and dbeta.

// GroupNormSiLUForward writes y = silu(groupnorm(x)); st (required) receives the
// statistics the backward passes read.
func (d *Device) GroupNormSiLUForward(y, x, gamma, beta *Tensor, st *GroupNormStats, s nn.GroupNormShape) error {
	if err := d.checkGNSiLU("group norm silu", s, st, operand{"y", y, s.Len()}, operand{"x", x, s.Len()},
		operand{"gamma", gamma, s.C}, operand{"beta", beta, s.C}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if d.gnVec(s, y, x) {
		return d.gnVecForwardLocked(y, x, gamma, beta, st, s, true)
	}
	if err := d.gnStatsLocked(st, x, s); err != nil {
		return err
	}
	return d.elementwise("gn_silu_fwd", s.Len(), TensorArg(y), TensorArg(x), TensorArg(gamma), TensorArg(beta),
		TensorArg(st.Mean), TensorArg(st.Rstd), IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups))
}

// GroupNormSiLUBackwardData computes dx from dy = d loss / d silu(groupnorm(x)).
func (d *Device) GroupNormSiLUBackwardData(dx, dy, x, gamma, beta *Tensor, st *GroupNormStats, s nn.GroupNormShape) error {
	if err := d.checkGNSiLU("group norm silu backward", s, st, operand{"dx", dx, s.Len()}, operand{"dy", dy, s.Len()},
		operand{"x", x, s.Len()}, operand{"gamma", gamma, s.C}, operand{"beta", beta, s.C}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if d.gnVec(s, dx, dy, x) {
		return d.gnVecBackwardLocked(dx, dy, x, gamma, beta, st, s, true, false)
	}
	return d.perRow("gn_silu_bwd_data", s.N*s.Groups, TensorArg(dx), TensorArg(dy), TensorArg(x), TensorArg(gamma), TensorArg(beta),
		TensorArg(st.Mean), TensorArg(st.Rstd), IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups))
}

// GroupNormSiLUBackwardParams computes dgamma and dbeta (either may be nil).
func (d *Device) GroupNormSiLUBackwardParams(dgamma, dbeta, dy, x, gamma, beta *Tensor, st *GroupNormStats, s nn.GroupNormShape) error {
	ops := append([]operand{{"dy", dy, s.Len()}, {"x", x, s.Len()}, {"gamma", gamma, s.C}, {"beta", beta, s.C}},
		optional(operand{"dgamma", dgamma, s.C}, operand{"dbeta", dbeta, s.C})...)
	if err := d.checkGNSiLU("group norm silu params", s, st, ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.perRow("gn_silu_bwd_params", s.C, TensorArg(dgamma), TensorArg(dbeta), TensorArg(dy), TensorArg(x), TensorArg(gamma), TensorArg(beta),
		TensorArg(st.Mean), TensorArg(st.Rstd), IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups))
}

func (d *Device) checkGNSiLU(op string, s nn.GroupNormShape, st *GroupNormStats, ops ...operand) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if st == nil {
		return d.checkOperands(op, operand{"stats", nil, 0})
	}
	return d.checkOperands(op, append(ops, operand{"mean", st.Mean, s.N * s.Groups}, operand{"rstd", st.Rstd, s.N * s.Groups})...)
}
