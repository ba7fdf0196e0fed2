package cuda

import "github.com/timelapse-ml/pipeline/trainer/nn"

// GroupNormStats holds the per-(sample, group) mean and 1/std of a forward pass, so the
// backward pass need not recompute them.
type GroupNormStats struct {
	Mean, Rstd *Tensor // (N*Groups)
}

// Free releases the statistics.
func (st *GroupNormStats) Free() {
	if st != nil {
		st.Mean.Free()
		st.Rstd.Free()
	}
}

// NewGroupNormStats allocates statistics for shape s.
func (d *Device) NewGroupNormStats(s nn.GroupNormShape) (*GroupNormStats, error) {
	m, err := d.NewTensor(s.N * s.Groups)
	if err != nil {
		return nil, err
	}
	r, err := d.NewTensor(s.N * s.Groups)
	if err != nil {
		m.Free()
		return nil, err
	}
	return &GroupNormStats{Mean: m, Rstd: r}, nil
}

func (d *Device) gnStatsLocked(st *GroupNormStats, x *Tensor, s nn.GroupNormShape) error {
	if splits := gnSplits(s, d.sms); splits > 1 {
		return d.gnStatsSplitLocked(st, x, s, splits)
	}
	return d.perRow("gn_stats", s.N*s.Groups, TensorArg(st.Mean), TensorArg(st.Rstd), TensorArg(x),
		IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups), F32Arg(s.Eps))
}

// gnSplitMin is the smallest slice of a group one block of the split
// statistics takes.
const gnSplitMin = 4096

// gnSplits is how many blocks share one group's statistics: enough for about
// 8 blocks per SM (one block per group leaves a large group's reduction
// latency-bound: 2.7 ms for 8 x 128 x 512 x 512, measured), slices of at
// least gnSplitMin values.
func gnSplits(s nn.GroupNormShape, sms int) int {
	groups := s.N * s.Groups
	gl := s.Len() / max(1, groups)
	want := (8*sms + groups - 1) / max(1, groups)
	return max(1, min(want, gl/gnSplitMin))
}

// gnStatsSplitLocked computes the statistics with splits blocks per group
// (gn_stats_part, gn_stats_merge).
func (d *Device) gnStatsSplitLocked(st *GroupNormStats, x *Tensor, s nn.GroupNormShape, splits int) error {
	groups := s.N * s.Groups
	part, err := d.scratch(2 * 3 * groups * splits) // doubles
	if err != nil {
		return err
	}
	defer part.Free()
	if err := d.perRow("gn_stats_part", groups*splits, TensorArg(part), TensorArg(x), IntArg(s.N), IntArg(s.C), IntArg(s.P),
		IntArg(s.Groups), IntArg(splits)); err != nil {
		return err
	}
	return d.elementwise("gn_stats_merge", groups, TensorArg(st.Mean), TensorArg(st.Rstd), TensorArg(part), IntArg(groups), IntArg(splits), F32Arg(s.Eps))
}

// GroupNormForward computes y = (x-mean)/std*gamma + beta per group (nn.GroupNormForward),
// statistics accumulated in float64. st receives the statistics (it may be nil).
func (d *Device) GroupNormForward(y, x, gamma, beta *Tensor, st *GroupNormStats, s nn.GroupNormShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := d.checkOperands("group norm", operand{"y", y, s.Len()}, operand{"x", x, s.Len()},
		operand{"gamma", gamma, s.C}, operand{"beta", beta, s.C}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if st == nil {
		tmp, err := d.scratchStats(s)
		if err != nil {
			return err
		}
		defer tmp.Free()
		st = tmp
	} else if err := d.checkOperands("group norm", operand{"mean", st.Mean, s.N * s.Groups}, operand{"rstd", st.Rstd, s.N * s.Groups}); err != nil {
		return err
	}
	if d.gnVec(s, y, x) {
		return d.gnVecForwardLocked(y, x, gamma, beta, st, s, false)
	}
	if s.N*s.Groups >= 2*d.sms {
		// enough groups to fill the GPU: statistics and output in one pass
		return d.perRow("gn_fwd_fused", s.N*s.Groups, TensorArg(y), TensorArg(st.Mean), TensorArg(st.Rstd), TensorArg(x), TensorArg(gamma), TensorArg(beta),
			IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups), F32Arg(s.Eps))
	}
	if err := d.gnStatsLocked(st, x, s); err != nil {
		return err
	}
	return d.elementwise("gn_fwd", s.Len(), TensorArg(y), TensorArg(x), TensorArg(gamma), TensorArg(beta), TensorArg(st.Mean), TensorArg(st.Rstd),
		IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups))
}

func (d *Device) scratchStats(s nn.GroupNormShape) (*GroupNormStats, error) {
	m, err := d.scratch(s.N * s.Groups)
	if err != nil {
		return nil, err
	}
	r, err := d.scratch(s.N * s.Groups)
	if err != nil {
		m.Free()
		return nil, err
	}
	return &GroupNormStats{Mean: m, Rstd: r}, nil
}

// statsFor returns st, or fresh statistics of x when st is nil (free them with the
// returned func).
func (d *Device) statsFor(st *GroupNormStats, x *Tensor, s nn.GroupNormShape) (*GroupNormStats, func(), error) {
	if st != nil {
		if err := d.checkOperands("group norm stats", operand{"mean", st.Mean, s.N * s.Groups}, operand{"rstd", st.Rstd, s.N * s.Groups}); err != nil {
			return nil, nil, err
		}
		return st, func() {}, nil
	}
	tmp, err := d.scratchStats(s)
	if err != nil {
		return nil, nil, err
	}
	if err := d.gnStatsLocked(tmp, x, s); err != nil {
		tmp.Free()
		return nil, nil, err
	}
	return tmp, tmp.Free, nil
}

// GroupNormBackwardData computes dx (nn.GroupNormBackwardData). st holds the forward
// statistics of x; nil recomputes them.
func (d *Device) GroupNormBackwardData(dx, dy, x, gamma *Tensor, st *GroupNormStats, s nn.GroupNormShape) error {
	return d.GroupNormBackward(dx, nil, nil, dy, x, gamma, st, s)
}

// GroupNormBackwardParams computes dgamma and dbeta, either may be nil
// (nn.GroupNormBackwardParams). st as for GroupNormBackwardData.
func (d *Device) GroupNormBackwardParams(dgamma, dbeta, dy, x, gamma *Tensor, st *GroupNormStats, s nn.GroupNormShape) error {
	return d.GroupNormBackward(nil, dgamma, dbeta, dy, x, gamma, st, s)
}

// GroupNormBackward computes any of dx, dgamma and dbeta (nil ones are skipped) in one
// pass of per-(sample, channel) sums shared by all three, then one element-wise pass
// for dx. st holds the forward statistics of x; nil recomputes them.
func (d *Device) GroupNormBackward(dx, dgamma, dbeta, dy, x, gamma *Tensor, st *GroupNormStats, s nn.GroupNormShape) error {
	if err := s.Validate(); err != nil {
		return err
	}
	ops := append([]operand{{"dy", dy, s.Len()}, {"x", x, s.Len()}, {"gamma", gamma, s.C}},
		optional(operand{"dx", dx, s.Len()}, operand{"dgamma", dgamma, s.C}, operand{"dbeta", dbeta, s.C})...)
	if err := d.checkOperands("group norm backward", ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if dgamma == nil && dbeta == nil && dx != nil && d.gnVec(s, dx, dy, x) {
		if st != nil {
			if err := d.checkOperands("group norm stats", operand{"mean", st.Mean, s.N * s.Groups}, operand{"rstd", st.Rstd, s.N * s.Groups}); err != nil {
				return err
			}
		}
		return d.gnVecBackwardLocked(dx, dy, x, gamma, nil, st, s, false, false)
	}
	st, done, err := d.statsFor(st, x, s)
	if err != nil {
		return err
	}
	defer done()
	nc, ng := s.N*s.C, s.N*s.Groups
	// One scratch block: sums (2*nc float64) then the two per-group means (2*ng float32).
	tmp, err := d.alloc.get(int64(16*nc + 8*ng))
	if err != nil {
		return err
	}
	defer tmp.Free()
	sxhat, sdy := tmp.Ptr, tmp.Ptr+uintptr(8*nc)
	mg, mgx := tmp.Ptr+uintptr(16*nc), tmp.Ptr+uintptr(16*nc+4*ng)
	if err := d.perRow("gn_bwd_reduce", nc, PtrArg(sxhat), PtrArg(sdy), TensorArg(dy), TensorArg(x), TensorArg(st.Mean), TensorArg(st.Rstd),
		IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups)); err != nil {
		return err
	}
	mgArg, mgxArg := PtrArg(mg), PtrArg(mgx)
	if dx == nil {
		mgArg, mgxArg = 0, 0
	}
	if err := d.elementwise("gn_bwd_finish", s.C+ng, TensorArg(dgamma), TensorArg(dbeta), mgArg, mgxArg, PtrArg(sxhat), PtrArg(sdy),
		TensorArg(gamma), IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups)); err != nil {
		return err
	}
	if dx == nil {
		return nil
	}
	return d.elementwise("gn_bwd_dx", s.Len(), TensorArg(dx), TensorArg(dy), TensorArg(x), TensorArg(gamma), TensorArg(st.Mean), TensorArg(st.Rstd),
		PtrArg(mg), PtrArg(mgx), IntArg(s.N), IntArg(s.C), IntArg(s.P), IntArg(s.Groups))
}
