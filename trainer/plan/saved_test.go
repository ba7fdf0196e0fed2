package plan

import (
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// The full-size SD-1.5 pseudo-3D step without checkpointing in bf16: the
// saved values trainer/gpu packs into 16 bits by default
// (gpu.SDSavedPacking) take the planned peak from 40.71 GiB (all float32,
// 40.52 GiB measured on an H200) to about 30.8 GiB, under PyTorch's 36.8
// GiB float16 step; packing every saved value takes it to half-size
// values' 23.6 GiB at most (ActBytes 2), and a packing of nothing changes
// nothing.
func TestSavedBytesPlainStep(t *testing.T) {
	n, err := model.DescribeUNet(model.SD15UNet(9), model.UNetOptions{Pseudo3D: true})
	if err != nil {
		t.Fatal(err)
	}
	var direct func(int) bool
	var fused func(int) bool
	job := func(saved func(int) int, act int) float64 {
		e, err := Plan(Job{Net: n, B: 1, T: 25, H: 64, W: 64, Train: true, WeightBytes: 2, ActBytes: act, FusedAttention: true,
			OptimizerOnDevice: true, AttentionBudget: 4 << 28, SavedBytes: saved, SavedDirect: direct, FusedNormSiLU: fused})
		if err != nil {
			t.Fatal(err)
		}
		return float64(e.Total) / (1 << 30)
	}
	sb, sd, err := gpu.SDSavedPacking(n, 1, 25, 64, 64, func(q model.ParamSpec) bool { return q.Temporal }, gpu.BF16, false)
	if err != nil || sb == nil || sd == nil {
		t.Fatalf("packing %v, %v", sb != nil, err)
	}
	whole, unpacked := job(nil, 4), job(sb, 4)
	direct = sd
	packed := job(sb, 4)
	fused = gpu.SDFusedNormSiLU(n)
	fusedPacked := job(sb, 4)
	fused, direct = nil, nil
	none := job(func(int) int { return 0 }, 4)
	all := job(func(int) int { return 2 }, 4)
	half := job(nil, 2)
	t.Logf("plain bf16 step: float32 %.2f GiB, default packing %.2f (all unpacked for the backward %.2f), all packed %.2f, 16-bit values %.2f", whole, packed, unpacked, all, half)
	if none != whole {
		t.Errorf("packing nothing: %.2f GiB, want %.2f", none, whole)
	}
	if packed < 29 || packed > 32 {
		t.Errorf("default packing: %.2f GiB, want about 30.8", packed)
	}
	if !(all < packed && all > half) {
		t.Errorf("everything packed: %.2f GiB, want between %.2f and %.2f", all, half, packed)
	}
	t.Logf("with the fused GroupNorm+SiLU (norm outputs never stored): %.2f GiB", fusedPacked)
	if !(fusedPacked < packed-1 && fusedPacked > packed-2.5) {
		t.Errorf("fused norms: %.2f GiB, want 1-2.5 GiB under %.2f (their outputs: 2.0 GiB stored)", fusedPacked, packed)
	}
	if ck, _, err := gpu.SDSavedPacking(n, 1, 25, 64, 64, nil, gpu.BF16, true); err != nil || ck != nil {
		t.Errorf("a checkpointed step packs saved values (%v)", err)
	}
}
