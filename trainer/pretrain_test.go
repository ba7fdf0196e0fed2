package trainer

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/metrics"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

func tinyCommon(t testing.TB, shardsDir string, steps int) Common {
	return Common{
		Shards: shardsDir, OutDir: t.TempDir(), Resolution: 16, Batch: 2, Steps: steps,
		LR: 2e-3, WarmupSteps: 2, GradClip: 1, Seed: 7, CheckpointEvery: 5, ValidateEvery: 0,
		ValBatches: 1, Workers: 1, Log: testLog(t),
	}
}

func TestPretrainWritesBackbone(t *testing.T) {
	dir := makeShards(t, 4, 10, 16)
	c := tinyCommon(t, dir, 3)
	res, err := Pretrain(context.Background(), PretrainOptions{Common: c, CondGap: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 3 || res.ValLoss <= 0 {
		t.Errorf("result %+v", res)
	}
	f := readTensors(t, filepath.Join(c.OutDir, BackboneFile))
	want := model.Tiny()
	if f.Metadata[MetaConfigHash] != want.Hash() || f.Metadata[MetaStep] != "3" || f.Metadata[MetaPrediction] != Prediction {
		t.Errorf("metadata %v", f.Metadata)
	}
	p, err := model.NewParams(want, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(p.Backbone()) {
		t.Errorf("backbone file holds %d tensors, the backbone has %d", len(f.Tensors), len(p.Backbone()))
	}
	for name := range f.Tensors {
		if strings.Contains(name, "temporal") {
			t.Errorf("backbone file holds temporal tensor %s", name)
		}
	}
	if _, _, err := LoadBackbone(filepath.Join(c.OutDir, BackboneFile), 1); err != nil {
		t.Fatal(err)
	}
	recs, err := metrics.ReadFile(filepath.Join(c.OutDir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[2].ValLoss == nil || recs[0].LR <= 0 || recs[0].StepSeconds <= 0 {
		t.Errorf("metrics %+v", recs)
	}
}

// Epochs replaces Steps: one pass over the training windows.
func TestPretrainEpochs(t *testing.T) {
	dir := makeShards(t, 4, 10, 16)
	c := tinyCommon(t, dir, 1000)
	c.Epochs = 1
	res, err := Pretrain(context.Background(), PretrainOptions{Common: c, CondGap: 3})
	if err != nil {
		t.Fatal(err)
	}
	// 3 of the 4 videos train (val_fraction 0.25); a video of 10 frames has
	// 7 windows of 2 frames 3 apart; batches of 2.
	want := (3*7 + 1) / 2
	if res.Steps != want {
		t.Errorf("1 epoch ran %d steps, want %d", res.Steps, want)
	}
}

// Pretraining resumes exactly too (same checkpointer as Train).
func TestPretrainResumeIsExact(t *testing.T) {
	dir := makeShards(t, 4, 10, 16)
	straight := tinyCommon(t, dir, 6)
	if _, err := Pretrain(context.Background(), PretrainOptions{Common: straight, CondGap: 2}); err != nil {
		t.Fatal(err)
	}
	split := tinyCommon(t, dir, 6)
	ctx, cancel := context.WithCancel(context.Background())
	split.afterStep = func(_ *session, step int) {
		if step == 3 {
			cancel()
		}
	}
	if _, err := Pretrain(ctx, PretrainOptions{Common: split, CondGap: 2}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted pretrain: %v", err)
	}
	split.afterStep, split.Resume = nil, true
	res, err := Pretrain(context.Background(), PretrainOptions{Common: split, CondGap: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 3 {
		t.Errorf("resumed from %d, want 3", res.ResumedFrom)
	}
	a := readTensors(t, filepath.Join(straight.OutDir, BackboneFile))
	b := readTensors(t, filepath.Join(split.OutDir, BackboneFile))
	sameTensors(t, "backbone", a, b)
}
