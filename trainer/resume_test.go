package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/metrics"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// jsonRecords parses JSON log lines.
func jsonRecords(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// Raising steps after a finished run continues from its last checkpoint to
// the new total; the cosine schedule is recomputed for the new total (the
// LR of the first new step is the new schedule's), and the log says so.
func TestTrainContinuesToRaisedSteps(t *testing.T) {
	o := trainOpts(t, 8)
	if _, err := Train(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	o.Steps, o.Resume = 14, true
	o.Log = slog.New(slog.NewJSONHandler(&logBuf, nil))
	res, err := Train(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 8 || res.Steps != 14 {
		t.Fatalf("resumed from %d to %d, want 8 to 14", res.ResumedFrom, res.Steps)
	}
	newSched := optim.Schedule{Warmup: o.WarmupSteps, Cosine: true, Total: 14, MinFactor: scheduleMinFactor}
	oldSched := optim.Schedule{Warmup: o.WarmupSteps, Cosine: true, Total: 8, MinFactor: scheduleMinFactor}
	var found bool
	for _, r := range jsonRecords(t, logBuf.Bytes()) {
		if r["msg"] != "continuing to a new total; the learning-rate schedule is recomputed for it" {
			continue
		}
		found = true
		if r["step"] != 8.0 || r["planned_steps"] != 8.0 || r["steps"] != 14.0 {
			t.Errorf("record %v", r)
		}
		if lr, _ := r["lr"].(float64); lr != o.LR*newSched.Factor(9) {
			t.Errorf("logged lr %v, want the new schedule's %v", r["lr"], o.LR*newSched.Factor(9))
		}
		if lr, _ := r["planned_lr"].(float64); lr != o.LR*oldSched.Factor(9) {
			t.Errorf("logged planned_lr %v, want %v", r["planned_lr"], o.LR*oldSched.Factor(9))
		}
	}
	if !found {
		t.Fatalf("no record of the recomputed schedule in\n%s", logBuf.Bytes())
	}
	recs, err := metrics.ReadFile(filepath.Join(o.OutDir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	lr := map[int]float64{}
	for _, r := range recs {
		if r.Step > 0 {
			lr[r.Step] = r.LR
		}
	}
	if len(lr) != 14 {
		t.Errorf("metrics cover %d steps, want 14", len(lr))
	}
	if got, want := lr[9], o.LR*newSched.Factor(9); math.Abs(got-want) > 1e-12 {
		t.Errorf("step 9 ran at lr %v, want the new schedule's %v", got, want)
	}
	f := readTensors(t, filepath.Join(o.OutDir, TemporalFile))
	if f.Metadata[MetaStep] != "14" || f.Metadata[MetaTotalSteps] != "14" {
		t.Errorf("checkpoint at step %s of %s, want 14 of 14", f.Metadata[MetaStep], f.Metadata[MetaTotalSteps])
	}
}

// A result-changing setting (lr) refuses the resume with an error naming
// it, and lowering steps below the checkpoint's step is ErrCheckpointAhead;
// neither touches the checkpoint.
func TestTrainResumeRefusals(t *testing.T) {
	o := trainOpts(t, 6)
	if _, err := Train(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(o.OutDir, TemporalFile)
	before, _ := checkpoint.FileHash(path)

	lr := o
	lr.Resume, lr.LR = true, o.LR*2
	_, err := Train(context.Background(), lr)
	var sc *SettingsChangedError
	if !errors.As(err, &sc) || len(sc.Changed) != 1 || !strings.HasPrefix(sc.Changed[0], "lr: 0.002 -> 0.004") {
		t.Errorf("lr changed: err = %v, want a SettingsChangedError naming lr only", err)
	}

	lower := o
	lower.Resume, lower.Steps = true, 4
	_, err = Train(context.Background(), lower)
	if !errors.Is(err, ErrCheckpointAhead) || !strings.Contains(err.Error(), "step 6, steps is 4") {
		t.Errorf("steps lowered: err = %v, want ErrCheckpointAhead naming both", err)
	}
	if after, _ := checkpoint.FileHash(path); after != before {
		t.Error("a refused resume changed the checkpoint")
	}
}

// A resume of a run already at its last step trains nothing and reports
// the recorded losses (train.json is rewritten with them, not zeros).
func TestTrainAlreadyTrainedReportsRecordedLosses(t *testing.T) {
	o := trainOpts(t, 7)
	o.LogEvery = 3 // the last log record covers step 7 only
	first, err := Train(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	o.Resume = true
	again, err := Train(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if again.ResumedFrom != 7 || again.Steps != 7 || again.ValLoss != first.ValLoss || again.Loss != first.Loss ||
		again.BaselineValLoss != first.BaselineValLoss {
		t.Errorf("already-trained result %+v, first run %+v", again, first)
	}
}
