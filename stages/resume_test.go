package stages

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/trainer"
)

// resumeYAML is trainingYAML up to train, which trains for the steps in %s
// (the edited part of its params).
var resumeYAML = strings.Replace(trainingYAML[:strings.Index(trainingYAML, "  sample:")],
	"steps: 3, checkpoint_every: 2, val_batches: 1}", "checkpoint_every: 4, val_batches: 1, %s}", 1)

// recorder keeps the trainer's log records (message and attrs) and can
// cancel the run when a record matches.
type recorder struct {
	mu       sync.Mutex
	lines    []string
	cancel   func()
	cancelOn string // "msg step=N"
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += fmt.Sprintf(" %s=%v", a.Key, a.Value.Any())
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, line)
	if r.cancel != nil && strings.HasPrefix(line, r.cancelOn+" ") {
		r.cancel()
	}
	return nil
}

// find returns the first recorded line starting with prefix, or "".
func (r *recorder) find(prefix string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func loadResume(t *testing.T, p *pipelinetest.Pipeline, edit string) *pipeline.Config {
	t.Helper()
	src := "workdir: " + p.Workdir + "\n" + fmt.Sprintf(resumeYAML, edit)
	cfg, err := pipeline.Load("test.yaml", p.Config.Dir, []byte(src), pipeline.NewRegistry(All()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runWith(t *testing.T, cfg *pipeline.Config, rec *recorder, ctx context.Context) ([]pipeline.Result, error) {
	t.Helper()
	return pipeline.New(cfg, pipeline.Options{Log: slog.New(rec)}).Run(ctx)
}

func trainOutputs(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range []string{trainer.TemporalFile, trainer.TrainStateFile} {
		out[f] = pipelinetest.ReadFile(t, filepath.Join(dir, f))
	}
	return out
}

// TestTrainResumesAfterEditingNoKeyParams interrupts train at step 2,
// edits log_every, workers and device (cpu -> auto, no GPU here), and runs
// again: train resumes at step 2 (its interrupted checkpoint), nothing
// upstream re-runs, and the weights and optimizer state end bit for bit
// equal to an uninterrupted run's.
func TestTrainResumesAfterEditingNoKeyParams(t *testing.T) {
	const first = "steps: 6, log_every: 1, workers: 1, device: cpu"
	ref := pipelinetest.New(t, All(), fmt.Sprintf(resumeYAML, first))
	ref.Run(pipeline.Options{})
	want := trainOutputs(t, ref.Dir("train"))

	p := pipelinetest.New(t, All(), fmt.Sprintf(resumeYAML, first))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := &recorder{cancel: cancel, cancelOn: "training job=train step=2"}
	if _, err := runWith(t, p.Config, rec, ctx); err == nil {
		t.Fatal("the interrupted run did not fail")
	}
	saved := rec.find("interrupted; saving a checkpoint")
	if saved != "interrupted; saving a checkpoint step=2" {
		t.Fatalf("interrupted run logged %q", saved)
	}

	cfg := loadResume(t, p, "steps: 6, log_every: 3, workers: 2, device: auto")
	rec = &recorder{}
	res, err := runWith(t, cfg, rec, t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ran := pipelinetest.Ran(res); len(ran) != 1 || ran[0] != "train" {
		t.Errorf("ran %v, want only train", ran)
	}
	if l := rec.find("resuming"); l != "resuming step=2" {
		t.Errorf("rerun logged %q, want resuming step=2", l)
	}
	got := trainOutputs(t, p.Dir("train"))
	for f := range want {
		if !bytes.Equal(got[f], want[f]) {
			t.Errorf("%s differs from the uninterrupted run's", f)
		}
	}
	// The finished stage stays up to date under more such edits.
	cfg = loadResume(t, p, "steps: 6, log_every: 5, workers: 0, device: cpu, validate_every: 1, sample_every: 3, tf32: true")
	if res, err := runWith(t, cfg, &recorder{}, t.Context()); err != nil || len(pipelinetest.Ran(res)) != 0 {
		t.Errorf("after more edits ran %v (%v), want nothing", pipelinetest.Ran(res), err)
	}
}

// TestTrainStepsRaisedContinuesAndLRChangeKeepsCheckpoint raises steps of
// a finished train stage (it continues from the last step, not 0), then
// changes lr (a fresh run: the old checkpoint stays on disk where the log
// says).
func TestTrainStepsRaisedContinuesAndLRChangeKeepsCheckpoint(t *testing.T) {
	p := pipelinetest.New(t, All(), fmt.Sprintf(resumeYAML, "steps: 3"))
	p.Run(pipeline.Options{})

	rec := &recorder{}
	res, err := runWith(t, loadResume(t, p, "steps: 5"), rec, t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ran := pipelinetest.Ran(res); len(ran) != 1 || ran[0] != "train" || !res[len(res)-1].Resume {
		t.Errorf("ran %v (resume %v), want train continuing", ran, res[len(res)-1].Resume)
	}
	if l := rec.find("resuming"); l != "resuming step=3" {
		t.Errorf("logged %q, want resuming step=3", l)
	}
	if l := rec.find("continuing to a new total"); !strings.Contains(l, "planned_steps=3 steps=5") {
		t.Errorf("logged %q", l)
	}
	if l := rec.find("training job=train step=5 "); l == "" || rec.find("training job=train step=1 ") != "" {
		t.Errorf("continued run's step lines: step 5 %q, step 1 %q", l, rec.find("training job=train step=1 "))
	}
	before := pipelinetest.ReadFile(t, filepath.Join(p.Dir("train"), trainer.TemporalFile))

	rec = &recorder{}
	if _, err := runWith(t, loadResume(t, p, "steps: 5, lr: 0.002"), rec, t.Context()); err != nil {
		t.Fatal(err)
	}
	moved := rec.find("previous outputs moved aside")
	path, ok := strings.CutPrefix(moved, "previous outputs moved aside path=")
	if !ok {
		t.Fatalf("no log line names the moved checkpoint: %q", moved)
	}
	if kept, err := os.ReadFile(filepath.Join(path, trainer.TemporalFile)); err != nil || !bytes.Equal(kept, before) {
		t.Errorf("old checkpoint at %s: %v (equal %v)", path, err, bytes.Equal(kept, before))
	}
	if l := rec.find("resuming"); l != "" {
		t.Errorf("the lr change resumed: %q", l)
	}
	st, err := pipeline.New(p.Config, pipeline.Options{}).Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Stage == "train" && (len(s.Previous) != 1 || s.Previous[0] != path) {
			t.Errorf("status lists %v, want %s", s.Previous, path)
		}
	}
}
