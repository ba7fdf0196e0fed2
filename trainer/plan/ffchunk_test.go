package plan

import (
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// Sampling 120 frames with guidance through the full-size pseudo-3D SD-1.5
// inpainting UNet (240 frames of 64x64 latents, float32): the 16
// transformer blocks' feed-forwards are the chains a forward-only executor
// runs in chunks, and chunking them at 512 MiB of intermediates takes the
// activations' peak down by a quarter at least (the level-0 feed-forward's
// intermediates are 15 GB) and the whole estimate under the 20 GiB;
// the estimate of a training step is unchanged.
func TestFeedForwardChunksLowerTheSamplingPeak(t *testing.T) {
	net, err := model.DescribeUNet(model.SD15UNet(9), model.UNetOptions{Pseudo3D: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(net.FeedForwardChains()); n != 16 {
		t.Fatalf("%d feed-forward chains, want 16 (one per transformer block)", n)
	}
	j := Job{Net: net, B: 2, T: 120, H: 64, W: 64, WeightBytes: 4, ActBytes: 4, AttentionBudget: 4 << 28}
	plain, err := Plan(j)
	if err != nil {
		t.Fatal(err)
	}
	j.FeedForwardChunk = 512 << 20
	chunked, err := Plan(j)
	if err != nil {
		t.Fatal(err)
	}
	const gib = 1 << 30
	t.Logf("UNet activations at 2 x 120 frames: %.2f GiB plain, %.2f GiB with chunked feed-forwards", float64(plain.Activations)/gib, float64(chunked.Activations)/gib)
	if chunked.Activations > plain.Activations*3/4 {
		t.Errorf("chunking lowers the activations' peak from %d B to only %d B", plain.Activations, chunked.Activations)
	}
	// the bound for sampling 120 frames: 20 GiB (float32 weights, the
	// library workspaces included)
	j.Workspace = 544 << 20
	if e, _ := Plan(j); e.Total > 20*gib {
		t.Errorf("sampling estimate %.2f GiB, want at most 20", float64(e.Total)/gib)
	}
	j.Train, j.T = true, 25
	tr1, _ := Plan(j)
	j.FeedForwardChunk = 0
	tr0, _ := Plan(j)
	if tr1.Total != tr0.Total {
		t.Errorf("training estimate %d with chunking, %d without: chunking is forward-only", tr1.Total, tr0.Total)
	}
}
