package model

import (
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// BenchmarkTinySDUNet times the CPU reference on the tiny SD inpainting
// UNet inflated to pseudo-3D: the interpreter's forward pass and one
// training step of the temporal layers (Gorgonia graph), one clip of 4
// frames of 16x16 latents.
//
//	go test ./trainer/model -run '^$' -bench TinySDUNet -benchtime 3x
func BenchmarkTinySDUNet(b *testing.B) {
	base, err := LoadUNet(weightsData+"/sd-tiny-inpaint/unet", weights.Options{}, UNetOptions{Pseudo3D: true})
	if err != nil {
		b.Fatal(err)
	}
	const B, T, H, W = 1, 4, 16, 16
	rng := rand.New(rand.NewPCG(1, 1))
	in := Inputs{Input: randSlice(rng, B*T*9*H*W), Timesteps: []float32{500, 500, 500, 500}, Context: randSlice(rng, B*T*ContextTokens*16)}
	target := randSlice(rng, B*T*4*H*W)
	b.Run("interpret/forward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := InterpretInputs(base.Net, base.Params, B, T, H, W, in); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/forward")
	})
	b.Run("graph/train_step", func(b *testing.B) {
		tg, err := BuildNetTrain(base.Net, base.Params, B, T, H, W, func(q *Param) bool { return q.Temporal })
		if err != nil {
			b.Fatal(err)
		}
		defer tg.Close()
		if err := tg.SetContext(in.Context); err != nil {
			b.Fatal(err)
		}
		if _, err := tg.Step(in.Input, in.Timesteps, target); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		cpu0 := cpuSeconds()
		for i := 0; i < b.N; i++ {
			if _, err := tg.Step(in.Input, in.Timesteps, target); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/step")
		b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "CPU-s/step")
		b.ReportMetric(maxRSSMB(), "maxRSS-MB")
	})
}
