package gpu

import (
	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// A GroupNorm whose output only feeds the SiLU right after it (twice in
// every ResBlock, and before the output conv) runs fused with it: the
// forward pass writes silu(groupnorm(x)) straight from x and the group
// statistics, so the normalised tensor is never written, read back or kept
// for the backward pass; the backward pass recomputes it from x (which the
// group norm keeps anyway) inside the same kernels that compute dx and, when
// trainable, dgamma and dbeta. Options.NoFusion turns this off.

// fusable reports whether layer i is a GroupNorm fused with the SiLU at i+1.
func fusable(net *model.Net, i int) bool {
	if i+1 >= len(net.Layers) {
		return false
	}
	l, next := net.Layers[i], net.Layers[i+1]
	if l.Kind != model.GroupNorm || next.Kind != model.SiLU || next.In[0] != l.Out || l.Out == net.Output {
		return false
	}
	for j, o := range net.Layers {
		if j == i+1 {
			continue
		}
		for _, v := range o.In {
			if v == l.Out {
				return false
			}
		}
	}
	return true
}

func (s *Step) perRowGrid(rows int) int { return min(rows, s.dev.Multiprocessors()*64) }

// gnSiLUForward writes y = silu(groupnorm(x)); st receives the statistics.
func (s *Step) gnSiLUForward(y, x, gamma, beta *cuda.Tensor, st *cuda.GroupNormStats, gs nn.GroupNormShape) error {
	rows := gs.N * gs.Groups
	if err := s.k.launch("gs_stats", s.perRowGrid(rows), aT(st.Mean), aT(st.Rstd), aT(x),
		aInt(gs.N), aInt(gs.C), aInt(gs.P), aInt(gs.Groups), aF32(gs.Eps)); err != nil {
		return err
	}
	return s.k.launch("gs_fwd", s.k.gridFor(int64(gs.Len())), aT(y), aT(x), aT(gamma), aT(beta), aT(st.Mean), aT(st.Rstd),
		aInt(gs.N), aInt(gs.C), aInt(gs.P), aInt(gs.Groups))
}

// gnSiLUBackwardData computes dx from dy = d loss / d silu(groupnorm(x)).
func (s *Step) gnSiLUBackwardData(dx, dy, x, gamma, beta *cuda.Tensor, st *cuda.GroupNormStats, gs nn.GroupNormShape) error {
	return s.k.launch("gs_bwd_data", s.perRowGrid(gs.N*gs.Groups), aT(dx), aT(dy), aT(x), aT(gamma), aT(beta),
		aT(st.Mean), aT(st.Rstd), aInt(gs.N), aInt(gs.C), aInt(gs.P), aInt(gs.Groups))
}

// gnSiLUBackwardParams computes dgamma and dbeta (either may be nil).
func (s *Step) gnSiLUBackwardParams(dgamma, dbeta, dy, x, gamma, beta *cuda.Tensor, st *cuda.GroupNormStats, gs nn.GroupNormShape) error {
	opt := func(t *cuda.Tensor) uint64 {
		if t == nil {
			return 0
		}
		return aT(t)
	}
	return s.k.launch("gs_bwd_params", s.perRowGrid(gs.C), opt(dgamma), opt(dbeta), aT(dy), aT(x), aT(gamma), aT(beta),
		aT(st.Mean), aT(st.Rstd), aInt(gs.N), aInt(gs.C), aInt(gs.P), aInt(gs.Groups))
}
