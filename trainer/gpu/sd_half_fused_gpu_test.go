//go:build gpu

package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// The fused 16-bit convolution chains (sd_half_fused.go) give the tiny
// VAE's unfused fp16 outputs: the same values are rounded to 16 bits at
// the same points, so only the one-pass group statistics and the order of
// the residual add differ (relative L2 within 2e-4, a tenth of float16's
// own error against float32 in TestSDHalfVAE). The peaks are logged (at
// full size TestSDFullSizeBench measures them).
func TestSDHalfFusedMatchesUnfused(t *testing.T) {
	m, err := weights.Open(sdFixtures + "/sd-tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	vae, err := model.OpenVAE(m)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 9))
	const N, H, W = 3, 32, 32
	f := vae.Config.Downscale()
	d := sdDevice(t, false)
	defer func() { halfFused = defaultHalfFused }()
	for _, c := range []struct {
		name string
		net  *model.Net
		in   []float32
	}{
		{"encoder", vae.Encoder, randn(rng, N*vae.Config.InChannels*H*W, 0.5)},
		{"decoder", vae.Decoder, randn(rng, N*vae.Config.LatentChannels*(H/f)*(W/f), 1)},
	} {
		var out [2][]float32
		var peak [2]int64
		for k, fused := range []bool{false, true} {
			halfFused = fused
			s, err := NewSDNet(d, c.net, vae.Params, N, 1, H, W, SDOptions{Precision: FP16})
			if err != nil {
				t.Fatal(err)
			}
			d.ResetPeak()
			got, err := s.Forward(model.Inputs{Input: c.in})
			peak[k] = s.MemStats().Peak
			if err == nil && fused && s.hf != nil {
				n := 0
				for _, ran := range s.hf.ran {
					if ran {
						n++
					}
				}
				t.Logf("%s: %d of %d chains ran fused", c.name, n, len(s.hf.first))
				if n == 0 {
					t.Errorf("%s: no chain ran fused", c.name)
				}
			}
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[k] = got[c.net.Output]
		}
		t.Logf("%s: fused vs unfused %.3g; peak %d -> %d bytes", c.name, checkRel(t, c.name, out[1], out[0], 2e-4), peak[0], peak[1])
	}
}
