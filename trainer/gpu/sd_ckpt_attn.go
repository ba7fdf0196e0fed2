package gpu

import (
	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// Selective checkpointing of the fused attention (sd_ckpt.go): the first
// pass of a checkpointed step keeps the saved results (16-bit output,
// row logsumexp) of the attention layers with at least
// SDOptions.CheckpointKeepAttention queries x keys, and the recompute
// widens the kept 16-bit output into the layer's float32 output instead
// of running the attention again. The layer after an attention (its
// output projection) reads that output rounded to 16 bits, and the kept
// copy is that rounding, so the recompute's results are the same.

// DefaultCheckpointKeepAttention is SDOptions.CheckpointKeepAttention's
// default: the self-attention over 64x64 latents of SD-1.5 (4096 x 4096
// positions), the recompute's largest attention; its five layers keep
// 0.38 GiB at 25 frames (0.23 GiB more at the step's peak). Keeping the
// 1024 x 1024 ones too saved 34 ms per step for 0.36 GiB more at the peak
// with the older flash kernels (bench/RESULTS.md), past the 11.55 GiB
// budget of issue 16 once the kernels padded their saved output.
const DefaultCheckpointKeepAttention = 1 << 24

// keepAttention is the predicate newCkptPlan marks the kept layers with.
func keepAttention(net *model.Net, shapes [][]int, min int) func(i int) bool {
	return func(i int) bool {
		l := net.Layers[i]
		if min <= 0 || l.Kind != model.SeqAttention || l.Temporal || len(l.In) < 2 {
			return false
		}
		q, k := shapes[l.In[0]], shapes[l.In[1]]
		return len(q) == 3 && len(k) == 3 && q[1]*k[1] >= min
	}
}

// keepsAttention reports whether layer i's fused attention saves its
// results in the first pass of a checkpointed step.
func (s *SDNet) keepsAttention(i int) bool {
	return s.ck != nil && s.ckSeg == ckptFirstPass && s.ck.keepAttn[i]
}

// keptAttention writes layer i's output y from the results kept in the
// first pass, when there are some (the recompute); false: run it.
func (s *SDNet) keptAttention(i int, y *cuda.Tensor) (bool, error) {
	if s.ck == nil || s.ckSeg < 0 || !s.ck.keepAttn[i] {
		return false, nil
	}
	sv := s.flashState().saved[i]
	if sv == nil {
		return false, nil
	}
	h := s.p.net.Layers[i].Heads
	n, l, c := y.Shape[0], y.Shape[1], y.Shape[2]
	dp, _ := flashDP(c / h)
	bf := 0
	if s.prec != FP16 {
		bf = 1
	}
	total := int64(n) * int64(l) * int64(c)
	return true, s.k.launch("sd_flash_o_widen", s.k.gridFor(total), cuda.TensorArg(y), cuda.TensorArg(sv.o), cuda.Int64Arg(total),
		cuda.IntArg(l), cuda.IntArg(c), cuda.IntArg(h), cuda.IntArg(dp), cuda.IntArg(bf))
}
