package stages

import (
	"bytes"
	"image/gif"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/trainer"
	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
)

// trainingYAML is the default pipeline's shape at CI size: synth to sample.
const trainingYAML = `stages:
  synth:
    kind: synth
    params: {count: 4, width: 64, height: 48, fps: 6, seconds: 7, seed: 3}
  ingest:
    kind: ingest
    needs: [synth]
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 32}
  pack:
    kind: pack
    needs: [frames]
    params: {val_fraction: 0.25}
  pretrain:
    kind: pretrain
    needs: [pack]
    params: {resolution: 16, batch: 2, steps: 4, cond_gap: 2, checkpoint_every: 2, val_batches: 1}
  train:
    kind: train
    needs: [pack, pretrain]
    params: {resolution: 16, frames_length: 4, batch: 1, steps: 3, checkpoint_every: 2, val_batches: 1}
  sample:
    kind: sample
    needs: [train]
    params: {frames: 7, steps: 2, scale: 2}
`

func TestTrainingStagesEndToEnd(t *testing.T) {
	p := pipelinetest.Run(t, All(), trainingYAML)
	backbone := filepath.Join(p.Dir("pretrain"), trainer.BackboneFile)
	before, err := checkpoint.FileHash(backbone)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{trainer.TemporalFile, trainer.TrainStateFile, trainer.MetricsFile, trainer.LossPlotFile, trainer.SummaryFile} {
		if _, err := os.Stat(filepath.Join(p.Dir("train"), f)); err != nil {
			t.Errorf("train output: %v", err)
		}
	}
	b, err := os.ReadFile(filepath.Join(p.Dir("sample"), trainer.SampleGIF))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gif.DecodeAll(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 7 || g.Config.Width != 32 {
		t.Errorf("sample.gif: %d frames of width %d, want 7 of 32", len(g.Image), g.Config.Width)
	}
	if _, err := os.Stat(filepath.Join(p.Dir("sample"), trainer.SampleMP4)); err != nil {
		t.Error(err)
	}

	// A second run skips everything; asking for train again re-runs train
	// and sample, and leaves the backbone file byte-identical.
	if ran := pipelinetest.Ran(p.Run(pipeline.Options{})); len(ran) != 0 {
		t.Errorf("second run ran %v, want nothing", ran)
	}
	ran := pipelinetest.Ran(p.Run(pipeline.Options{Stages: []string{"train"}, Force: true}))
	if !slices.Contains(ran, "train") {
		t.Errorf("forced run ran %v, want train", ran)
	}
	after, _ := checkpoint.FileHash(backbone)
	if before != after {
		t.Errorf("backbone changed: %s -> %s", before, after)
	}
}

func TestTrainNeedsABackbone(t *testing.T) {
	yaml := strings.Replace(trainingYAML, "needs: [pack, pretrain]", "needs: [pack]", 1)
	p := pipelinetest.New(t, All(), yaml)
	_, err := p.TryRun(t.Context(), pipeline.Options{Stages: []string{"train"}})
	if err == nil || !strings.Contains(err.Error(), "needs a pretrain stage or the backbone param") {
		t.Errorf("err = %v", err)
	}
}
