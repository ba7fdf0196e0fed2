package trainer

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// With ema_decay the weights file holds the average, the state file the
// raw weights, and an interrupted run resumes both bit for bit.
func TestPretrainEMAResumeIsExact(t *testing.T) {
	dir := makeShards(t, 4, 10, 16)
	straight := tinyCommon(t, dir, 6)
	straight.EMADecay = 0.9
	if _, err := Pretrain(context.Background(), PretrainOptions{Common: straight, CondGap: 2}); err != nil {
		t.Fatal(err)
	}
	split := tinyCommon(t, dir, 6)
	split.EMADecay = 0.9
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
	if res, err := Pretrain(context.Background(), PretrainOptions{Common: split, CondGap: 2}); err != nil || res.ResumedFrom != 3 {
		t.Fatalf("resume: %+v, %v", res, err)
	}
	for _, file := range []string{BackboneFile, PretrainStateFile} {
		a := readTensors(t, filepath.Join(straight.OutDir, file))
		b := readTensors(t, filepath.Join(split.OutDir, file))
		for name, ta := range a.Tensors {
			for i := range ta.Data {
				if math.Float32bits(ta.Data[i]) != math.Float32bits(b.Tensors[name].Data[i]) {
					t.Fatalf("%s %s[%d]: straight %v, resumed %v", file, name, i, ta.Data[i], b.Tensors[name].Data[i])
				}
			}
		}
	}
	w := readTensors(t, filepath.Join(straight.OutDir, BackboneFile))
	st := readTensors(t, filepath.Join(straight.OutDir, PretrainStateFile))
	if w.Metadata[MetaEMADecay] != "0.9" {
		t.Errorf("weights file metadata %s = %q, want 0.9", MetaEMADecay, w.Metadata[MetaEMADecay])
	}
	differ := 0
	for name, tw := range w.Tensors {
		raw, ok := st.Tensors[rawPrefix+name]
		if !ok {
			t.Fatalf("state file lacks %s%s", rawPrefix, name)
		}
		for i := range tw.Data {
			if tw.Data[i] != raw.Data[i] {
				differ++
			}
		}
	}
	if differ == 0 {
		t.Error("the weights file holds the raw weights, not their average")
	}
	// a resume with another decay is refused (it changes the results)
	split.EMADecay = 0
	split.Steps = 8
	var sc *SettingsChangedError
	if _, err := Pretrain(context.Background(), PretrainOptions{Common: split, CondGap: 2}); !errors.As(err, &sc) {
		t.Errorf("resume with ema_decay 0 of an averaged checkpoint: %v, want a SettingsChangedError", err)
	}
}

// Train with ema_decay: the temporal file holds the average and the
// previews (drawn with it) are written.
func TestTrainEMA(t *testing.T) {
	o := trainOpts(t, 4)
	o.EMADecay = 0.9
	o.SampleEvery = 4
	o.ValidateEvery = 4
	res, err := Train(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	w := readTensors(t, filepath.Join(o.OutDir, TemporalFile))
	if w.Metadata[MetaEMADecay] != "0.9" {
		t.Errorf("temporal file metadata %v", w.Metadata)
	}
	if _, err := os.Stat(filepath.Join(o.OutDir, PreviewDir, "step-000004.gif")); err != nil {
		t.Error(err)
	}
	if res.ValLoss <= 0 || math.IsNaN(res.ValLoss) {
		t.Errorf("validation loss %v", res.ValLoss)
	}
}
