package trainer

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/cuda"
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
// chunks, so the result does not depend on goroutine scheduling. The resume
// edits settings that do not change results (log_every, workers, device
// cpu -> auto, which falls back to the CPU without a GPU,
// checkpoint_every, validate_every): it still ends bit for bit where the
// straight run ends.
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
	split.LogEvery, split.Workers, split.CheckpointEvery, split.ValidateEvery = 3, 3, 4, 6
	if ok, _ := cuda.Available(); !ok {
		split.Device = DeviceAuto
	}
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
	sa := readTensors(t, filepath.Join(straight.OutDir, TrainStateFile))
	sb := readTensors(t, filepath.Join(split.OutDir, TrainStateFile))
	sameTensors(t, "optimizer state", sa, sb)
	if sa.Metadata[MetaRNG] == "" || sa.Metadata[MetaRNG] != sb.Metadata[MetaRNG] {
		t.Errorf("rng state: %q vs %q", sa.Metadata[MetaRNG], sb.Metadata[MetaRNG])
	}
	for _, k := range []string{MetaStep, MetaConfigHash, MetaBackboneHash, MetaRunHash} {
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

// sameTensors fails unless b holds a's tensors with the same bits.
func sameTensors(t *testing.T, what string, a, b *checkpoint.File) {
	t.Helper()
	if len(a.Tensors) == 0 || len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%s: %d vs %d tensors", what, len(a.Tensors), len(b.Tensors))
	}
	for name, ta := range a.Tensors {
		tb := b.Tensors[name]
		if len(tb.Data) != len(ta.Data) {
			t.Fatalf("%s %s: %d vs %d values", what, name, len(ta.Data), len(tb.Data))
		}
		for i := range ta.Data {
			if math.Float32bits(ta.Data[i]) != math.Float32bits(tb.Data[i]) {
				t.Fatalf("%s %s[%d]: straight %v, resumed %v", what, name, i, ta.Data[i], tb.Data[i])
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

// A NaN validation loss is recorded as null (metrics.jsonl and train.json
// stay valid JSON) and does not abort the checkpoint of its step: the
// weights come from finite training steps.
func TestTrainNaNValidationLossStillCheckpoints(t *testing.T) {
	o := trainOpts(t, 6)
	o.ValidateEvery, o.CheckpointEvery = 3, 3
	o.afterStep = func(s *session, step int) {
		if step == 2 { // before step 3's validation
			s.val.examples[0].input[0] = float32(math.NaN())
		}
	}
	var stepAt3 string
	o.OnStep = func(step, _ int) {
		if step == 4 {
			f := readTensors(t, filepath.Join(o.OutDir, TemporalFile))
			stepAt3 = f.Metadata[MetaStep]
		}
	}
	res, err := Train(context.Background(), o)
	if err != nil {
		t.Fatalf("a NaN validation loss aborted the run: %v", err)
	}
	if stepAt3 != "3" || res.Steps != 6 || !math.IsNaN(res.ValLoss) {
		t.Fatalf("checkpoint after step 3 at step %q; result %+v", stepAt3, res)
	}
	if f := readTensors(t, filepath.Join(o.OutDir, TemporalFile)); f.Metadata[MetaStep] != "6" {
		t.Errorf("final checkpoint at step %s, want 6", f.Metadata[MetaStep])
	}
	b, err := os.ReadFile(filepath.Join(o.OutDir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	nulls := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		if v, ok := m["val_loss"]; ok && v == nil {
			nulls++
		}
	}
	if nulls != 2 { // steps 3 and 6
		t.Errorf("%d null validation losses in metrics.jsonl, want 2:\n%s", nulls, b)
	}
	var sum map[string]any
	b, err = os.ReadFile(filepath.Join(o.OutDir, SummaryFile))
	if err == nil {
		err = json.Unmarshal(b, &sum)
	}
	if err != nil || sum["val_loss"] != nil || sum["steps"] != 6.0 {
		t.Errorf("train.json %s: %v", b, err)
	}
}
