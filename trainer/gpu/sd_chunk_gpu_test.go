//go:build gpu

package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// A forward pass with the feed-forwards run over chunks of rows equals the
// plain pass on the inflated tiny inpainting UNet (float32, TF32 off: the
// same products on fewer rows, to 1e-5 relative), and holds less at its
// peak.
func TestSDFeedForwardChunksMatch(t *testing.T) {
	d := sdDevice(t, false)
	base, err := model.LoadUNet(sdFixtures+"/sd-tiny-inpaint/unet", weights.Options{}, model.UNetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := model.Inflate(base, model.UNetOptions{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	const B, T, H, W = 2, 6, 16, 16
	rng := rand.New(rand.NewPCG(9, 1))
	in := model.Inputs{Input: randn(rng, B*T*u.Config.InChannels*H*W, 1), Timesteps: make([]float32, B*T),
		Context: randn(rng, B*T*model.ContextTokens*u.Config.CrossAttentionDim, 1)}
	for i := range in.Timesteps {
		in.Timesteps[i] = 300
	}
	run := func(budget int64) ([]float32, int64, int) {
		saved := ffChunkBytes
		ffChunkBytes = budget
		defer func() { ffChunkBytes = saved }()
		base := d.MemStats().InUse
		d.ResetPeak()
		s, err := NewSDNet(d, u.Net, u.Params, B, T, H, W, SDOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		out, err := s.Forward(in)
		if err != nil {
			t.Fatal(err)
		}
		chunked := 0
		if s.ff != nil {
			for _, r := range s.ff.ran {
				if r {
					chunked++
				}
			}
		}
		return out[u.Net.Output], s.MemStats().Peak - base, chunked
	}
	want, peak, n := run(SDFeedForwardChunkBytes)
	if n != 0 {
		t.Fatalf("%d feed-forwards chunked at the default budget on the tiny model", n)
	}
	got, cpeak, n := run(16 << 10)
	chains := len(u.Net.FeedForwardChains())
	if n != chains || chains == 0 {
		t.Fatalf("%d of %d feed-forwards chunked", n, chains)
	}
	e := checkRel(t, "chunked forward", got, want, 1e-5)
	t.Logf("%d feed-forwards in chunks: rel err %.3g, peak %d B vs %d B", n, e, cpeak, peak)
	if cpeak > peak {
		t.Errorf("chunked peak %d B above the plain pass's %d B", cpeak, peak)
	}
}
