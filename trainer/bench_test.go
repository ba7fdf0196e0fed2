package trainer

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// The default pipeline's training sizes: tiny model, 32x32 frames.
const benchRes = 32

var benchData struct {
	shards, backbone string
}

// benchSetup packs synthetic clips and pretrains a backbone for 1 step,
// once per benchmark binary.
func benchSetup(b *testing.B) (string, string) {
	if benchData.shards == "" {
		benchData.shards = makeShards(testDir{b, sharedDir}, 4, 30, 64)
		c := benchCommon(b, benchData.shards, 1, 8)
		if _, err := Pretrain(context.Background(), PretrainOptions{Common: c}); err != nil {
			b.Fatal(err)
		}
		benchData.backbone = filepath.Join(c.OutDir, BackboneFile)
	}
	return benchData.shards, benchData.backbone
}

func benchCommon(b *testing.B, shardsDir string, steps, batch int) Common {
	out, err := filepath.Abs(testDir{b, sharedDir}.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return Common{Shards: shardsDir, OutDir: out, Resolution: benchRes, Batch: batch, Steps: steps, LR: 1e-3,
		GradClip: 1, Seed: 1, ValBatches: 1, Log: testLog(b)}
}

// BenchmarkPretrainStep times a pretraining step of the default pipeline
// (batch 8 frame pairs): data, forward, backward, AdamW.
func BenchmarkPretrainStep(b *testing.B) {
	dir, _ := benchSetup(b)
	c := benchCommon(b, dir, b.N, 8)
	res, err := Pretrain(context.Background(), PretrainOptions{Common: c})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.SecondsPerStep, "s/step")
	b.ReportMetric(8/res.SecondsPerStep, "frames/s")
}

// BenchmarkTrainStep times a video training step of the default pipeline
// (batch 2 clips of 8 frames, temporal layers trainable).
func BenchmarkTrainStep(b *testing.B) {
	dir, bb := benchSetup(b)
	c := benchCommon(b, dir, b.N, 2)
	res, err := Train(context.Background(), TrainOptions{Common: c, Backbone: bb, FramesLength: 8})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.SecondsPerStep, "s/step")
	b.ReportMetric(16/res.SecondsPerStep, "frames/s")
}

// BenchmarkSample25x20 times the sampling compute of the default pipeline:
// 25 frames, 20 DDIM steps (media writing excluded).
func BenchmarkSample25x20(b *testing.B) {
	_, bb := benchSetup(b)
	p, _, err := LoadBackbone(bb, 1)
	if err != nil {
		b.Fatal(err)
	}
	fg, err := model.BuildForward(p, true, 1, 25, benchRes, benchRes)
	if err != nil {
		b.Fatal(err)
	}
	defer fg.Close()
	s, _ := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	cond := make([]float32, 3*benchRes*benchRes)
	l := diffusion.Layout{B: 1, T: 25, C: 3, H: benchRes, W: benchRes}
	b.ResetTimer()
	for range b.N {
		if _, err := diffusion.SampleDDIM(context.Background(), s, epsFromV(fg.Predict, s, 3, benchRes*benchRes), cond, l,
			diffusion.DDIMOptions{Steps: 20}); err != nil {
			b.Fatal(err)
		}
	}
}
