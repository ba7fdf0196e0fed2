package trainer

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/metrics"
)

// fixture is a shards folder and a pretrained tiny backbone, shared by the
// tests of this file.
var fixture struct {
	once     sync.Once
	shards   string
	backbone string
	err      error
}

func pretrained(t *testing.T) (shardsDir, backbone string) {
	t.Helper()
	fixture.once.Do(func() {
		fixture.shards = makeShards(testDir{t, sharedDir}, 6, 12, 16)
		c := tinyCommon(t, fixture.shards, 6)
		c.OutDir = filepath.Join(sharedDir, "pretrain")
		if _, err := Pretrain(context.Background(), PretrainOptions{Common: c, CondGap: 2}); err != nil {
			fixture.err = err
			return
		}
		fixture.backbone = filepath.Join(c.OutDir, BackboneFile)
	})
	if fixture.err != nil {
		t.Fatal(fixture.err)
	}
	return fixture.shards, fixture.backbone
}

func trainOpts(t *testing.T, steps int) TrainOptions {
	dir, bb := pretrained(t)
	c := tinyCommon(t, dir, steps)
	c.Cosine = true
	c.WeightDecay = 0.01
	return TrainOptions{Common: c, Backbone: bb, FramesLength: 4}
}

func readTensors(t *testing.T, path string) *checkpoint.File {
	t.Helper()
	f, err := checkpoint.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Runs on all cores: the ops' reductions and AdamW's are grouped in fixed
// chunks, so the result does not depend on goroutine scheduling.
func TestTrainResumeIsExact(t *testing.T) {
	straight := trainOpts(t, 20)
	if _, err := Train(context.Background(), straight); err != nil {
		t.Fatal(err)
	}

	// Interrupted after step 10 (SIGINT: the context is cancelled), then
	// resumed in the same folder, as the engine does.
	split := trainOpts(t, 20)
	split.CheckpointEvery = 7 // the interrupt, not a periodic checkpoint, saves step 10
	ctx, cancel := context.WithCancel(context.Background())
	split.afterStep = func(_ *session, step int) {
		if step == 10 {
			cancel()
		}
	}
	res, err := Train(ctx, split)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
	}
	if res.Steps != 10 {
		t.Fatalf("interrupted run stopped after step %d, want 10", res.Steps)
	}
	f := readTensors(t, filepath.Join(split.OutDir, TemporalFile))
	if f.Metadata[MetaStep] != "10" {
		t.Fatalf("checkpoint on interrupt is at step %s, want 10", f.Metadata[MetaStep])
	}
	split.afterStep = nil
	split.Resume = true
	res, err = Train(context.Background(), split)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 10 || res.Steps != 20 {
		t.Fatalf("resumed from %d to %d, want 10 to 20", res.ResumedFrom, res.Steps)
	}

	a := readTensors(t, filepath.Join(straight.OutDir, TemporalFile))
	b := readTensors(t, filepath.Join(split.OutDir, TemporalFile))
	if len(a.Tensors) == 0 || len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d vs %d temporal tensors", len(a.Tensors), len(b.Tensors))
	}
	changed := false
	init, _, _ := LoadBackbone(straight.Backbone, uint64(straight.Seed))
	for name, ta := range a.Tensors {
		if !strings.Contains(name, "temporal") {
			t.Errorf("temporal.safetensors holds non-temporal tensor %s", name)
		}
		tb := b.Tensors[name]
		for i := range ta.Data {
			if math.Float32bits(ta.Data[i]) != math.Float32bits(tb.Data[i]) {
				t.Fatalf("%s[%d]: straight %v, resumed %v", name, i, ta.Data[i], tb.Data[i])
			}
			if ta.Data[i] != init.Get(name).Data[i] {
				changed = true
			}
		}
	}
	if !changed {
		t.Error("training left every temporal weight at its initial value")
	}
	for _, k := range []string{MetaStep, MetaConfigHash, MetaBackboneHash} {
		if a.Metadata[k] == "" || a.Metadata[k] != b.Metadata[k] {
			t.Errorf("metadata %s: %q vs %q", k, a.Metadata[k], b.Metadata[k])
		}
	}
	// The resumed run's metrics cover every step once.
	recs, err := readMetrics(filepath.Join(split.OutDir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, r := range recs {
		seen[r]++
	}
	for s := 1; s <= 20; s++ {
		if seen[s] != 1 {
			t.Errorf("step %d logged %d times", s, seen[s])
		}
	}
}

func TestTrainLeavesBackboneIdentical(t *testing.T) {
	o := trainOpts(t, 3)
	o.SampleEvery = 2
	before, err := checkpoint.FileHash(o.Backbone)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Train(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	after, _ := checkpoint.FileHash(o.Backbone)
	if before != after {
		t.Fatalf("backbone hash changed: %s -> %s", before, after)
	}
	if _, err := os.Stat(filepath.Join(o.OutDir, PreviewDir, "step-000002.gif")); err != nil {
		t.Errorf("sample hook: %v", err)
	}
	f := readTensors(t, filepath.Join(o.OutDir, TemporalFile))
	if f.Metadata[MetaBackboneHash] != before {
		t.Errorf("temporal metadata names backbone %s, want %s", f.Metadata[MetaBackboneHash], before)
	}
}

func TestTrainStopsOnNonFiniteLoss(t *testing.T) {
	o := trainOpts(t, 12)
	o.CheckpointEvery = 5
	// After step 6, a temporal weight becomes Inf (the memory the graph
	// reads), so step 7's loss is not finite.
	o.afterStep = func(s *session, step int) {
		if step == 6 {
			s.params.TemporalParams()[0].Data[0] = float32(math.Inf(1))
		}
	}
	_, err := Train(context.Background(), o)
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("err = %v, want ErrNonFinite", err)
	}
	if !strings.Contains(err.Error(), "step 7") || !strings.Contains(err.Error(), "last good one is kept") {
		t.Errorf("message %q should name step 7 and the kept checkpoint", err)
	}
	f := readTensors(t, filepath.Join(o.OutDir, TemporalFile))
	if f.Metadata[MetaStep] != "5" {
		t.Errorf("checkpoint at step %s, want the last good one (5)", f.Metadata[MetaStep])
	}
	for name, tn := range f.Tensors {
		for _, v := range tn.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("kept checkpoint has a non-finite value in %s", name)
			}
		}
	}
}

func readMetrics(path string) ([]int, error) {
	recs, err := metrics.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, r := range recs {
		if r.Step > 0 {
			steps = append(steps, r.Step)
		}
	}
	return steps, nil
}
