package pipeline_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
)

const stepsYAML = `
stages:
  t:
    kind: steps
    params: {total: 4, lr: 0.1, every: 1, stop_at: 2}
`

// Editing a NoKey param neither re-runs a finished stage nor keeps an
// interrupted one from resuming.
func TestNoKeyParamsResumeAndStayUpToDate(t *testing.T) {
	var log runLog
	p := load(t, &log, stepsYAML)
	if _, err := p.TryRun(t.Context(), pipeline.Options{}); err == nil {
		t.Fatal("want the stop at step 2")
	}
	expectRan(t, &log, "t from 0")
	p2 := reload(t, p, &log, strings.Replace(stepsYAML, "every: 1, stop_at: 2", "every: 7", 1))
	res := p2.Run(pipeline.Options{})
	expectRan(t, &log, "t from 2")
	if !res[0].Resume {
		t.Errorf("step %+v: want a resume", res[0].Step)
	}
	p3 := reload(t, p, &log, strings.Replace(stepsYAML, "every: 1, stop_at: 2", "every: 3", 1))
	if res := p3.Run(pipeline.Options{}); res[0].Action != pipeline.ActSkip {
		t.Errorf("after editing every: %s %v, want up to date", res[0].Action, res[0].Reasons)
	}
	expectRan(t, &log)
}

// A change the kind calls a continuation runs with Resume on the previous
// outputs; any other change moves them aside first, and status lists them.
func TestContinuationAndPreviousOutputsKept(t *testing.T) {
	var log runLog
	src := strings.Replace(stepsYAML, ", stop_at: 2", "", 1)
	p := load(t, &log, src)
	p.Run(pipeline.Options{})
	expectRan(t, &log, "t from 0")

	p2 := reload(t, p, &log, strings.Replace(src, "total: 4", "total: 6", 1))
	res := p2.Run(pipeline.Options{})
	expectRan(t, &log, "t from 4")
	if !res[0].Resume || !strings.Contains(strings.Join(res[0].Reasons, "; "), "continues the previous outputs") {
		t.Errorf("raising total: %+v", res[0].Step)
	}
	steps := filepath.Join(p.Dir("t"), "steps.txt")
	if got := string(pipelinetest.ReadFile(t, steps)); got != "1@0.1\n2@0.1\n3@0.1\n4@0.1\n5@0.1\n6@0.1\n" {
		t.Errorf("steps.txt = %q", got)
	}
	before := pipelinetest.ReadFile(t, steps)

	// Changing lr starts afresh; the old outputs are moved aside and logged.
	var logBuf bytes.Buffer
	p3 := reload(t, p, &log, strings.Replace(src, "total: 4, lr: 0.1", "total: 6, lr: 0.2", 1))
	if _, err := pipeline.New(p3.Config, pipeline.Options{Log: slog.New(slog.NewTextHandler(&logBuf, nil))}).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	expectRan(t, &log, "t from 0")
	prev, err := filepath.Glob(filepath.Join(p.Workdir, ".pipeline", "previous", "t-*"))
	if err != nil || len(prev) != 1 {
		t.Fatalf("previous folders %v %v", prev, err)
	}
	if got := pipelinetest.ReadFile(t, filepath.Join(prev[0], "steps.txt")); !bytes.Equal(got, before) {
		t.Errorf("kept steps.txt = %q, want %q", got, before)
	}
	if !strings.Contains(logBuf.String(), `msg="previous outputs moved aside"`) || !strings.Contains(logBuf.String(), "path="+prev[0]) {
		t.Errorf("log does not name %s:\n%s", prev[0], logBuf.String())
	}
	st, err := pipeline.New(p3.Config, pipeline.Options{}).Status()
	if err != nil || len(st[0].Previous) != 1 || st[0].Previous[0] != prev[0] {
		t.Errorf("status previous = %v %v", st[0].Previous, err)
	}
	// Lowering the total is no continuation either.
	p4 := reload(t, p, &log, strings.Replace(src, "total: 4, lr: 0.1", "total: 3, lr: 0.2", 1))
	p4.Run(pipeline.Options{})
	expectRan(t, &log, "t from 0")
	if prev, _ := filepath.Glob(filepath.Join(p.Workdir, ".pipeline", "previous", "t-*")); len(prev) != 2 {
		t.Errorf("previous folders %v, want 2", prev)
	}
}

// A stage recorded before one of its params became NoKey stays up to date.
func TestStateFromBeforeNoKeyStaysUpToDate(t *testing.T) {
	var log runLog
	src := strings.Replace(stepsYAML, ", stop_at: 2", "", 1)
	keyed := testKinds(&log, nil)
	for i := range keyed {
		for j := range keyed[i].Params {
			keyed[i].Params[j].NoKey = false
		}
	}
	p := pipelinetest.New(t, keyed, src)
	p.Run(pipeline.Options{})
	expectRan(t, &log, "t from 0")
	p2 := reload(t, p, &log, src) // the kinds as they are: every and stop_at NoKey
	if res := p2.Run(pipeline.Options{}); res[0].Action != pipeline.ActSkip {
		t.Errorf("%s %v, want up to date", res[0].Action, res[0].Reasons)
	}
	expectRan(t, &log)
}
