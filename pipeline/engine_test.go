package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
)

const chain = `
stages:
  a:
    kind: write
    params: {text: A}
  b:
    kind: write
    needs: [a]
    params: {text: B}
  c:
    kind: write
    needs: b
    params: {text: C}
`

func load(t *testing.T, log *runLog, src string) *pipelinetest.Pipeline {
	t.Helper()
	return pipelinetest.New(t, testKinds(log, nil), src)
}

func reload(t *testing.T, p *pipelinetest.Pipeline, log *runLog, src string) *pipelinetest.Pipeline {
	t.Helper()
	cfg, err := pipeline.Load("test.yaml", p.Config.Dir, []byte("workdir: "+p.Workdir+"\n"+src), pipeline.NewRegistry(testKinds(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &pipelinetest.Pipeline{T: t, Config: cfg, Workdir: p.Workdir}
}

func expectRan(t *testing.T, log *runLog, want ...string) {
	t.Helper()
	got := log.take()
	if !slices.Equal(got, want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
}

func TestRunsInOrderThenSkips(t *testing.T) {
	var log runLog
	p := load(t, &log, chain)
	p.Run(pipeline.Options{})
	expectRan(t, &log, "a", "b", "c")
	if got := string(pipelinetest.ReadFile(t, filepath.Join(p.Dir("c"), "out.txt"))); got != "C|B|A" {
		t.Fatalf("c wrote %q", got)
	}
	res := p.Run(pipeline.Options{})
	expectRan(t, &log)
	for _, r := range res {
		if r.Action != pipeline.ActSkip {
			t.Errorf("%s: %s %v, want skip", r.Stage, r.Action, r.Reasons)
		}
	}
}

func TestInvalidationMatrix(t *testing.T) {
	var log runLog
	p := load(t, &log, chain)
	p.Run(pipeline.Options{})
	log.take()

	// Changing b's params re-runs b and its downstream, never its upstream.
	p2 := reload(t, p, &log, strings.Replace(chain, "text: B", "text: B2", 1))
	plan, err := pipeline.New(p2.Config, pipeline.Options{}).Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if plan[0].Action != pipeline.ActSkip || plan[1].Action != pipeline.ActRun || !strings.Contains(plan[1].Reasons[0], "params changed: text") {
		t.Fatalf("plan after param change: %+v", plan)
	}
	p2.Run(pipeline.Options{})
	expectRan(t, &log, "b", "c")

	// Touching an output by hand makes its stage stale; an unchanged
	// rewrite leaves downstream up to date.
	out := filepath.Join(p.Dir("b"), "out.txt")
	if err := os.WriteFile(out, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	plan, _ = pipeline.New(p2.Config, pipeline.Options{}).Plan(context.Background())
	if plan[1].Action != pipeline.ActRun || !strings.Contains(strings.Join(plan[1].Reasons, ";"), "output missing or altered: out.txt was changed") {
		t.Fatalf("plan after tampering: %+v", plan[1])
	}
	p2.Run(pipeline.Options{})
	expectRan(t, &log, "b")

	// Deleting an output re-runs the stage too.
	os.Remove(out)
	p2.Run(pipeline.Options{})
	expectRan(t, &log, "b")

	// --stage re-runs exactly that stage (its up-to-date upstream is skipped,
	// its downstream is not run).
	p2.Run(pipeline.Options{Stages: []string{"b"}})
	expectRan(t, &log, "b")
	// --force re-runs everything.
	p2.Run(pipeline.Options{Force: true})
	expectRan(t, &log, "a", "b", "c")
	// --stage with a stale upstream runs the upstream first.
	p3 := reload(t, p, &log, strings.Replace(chain, "text: A", "text: A3", 1))
	p3.Run(pipeline.Options{Stages: []string{"b"}})
	expectRan(t, &log, "a", "b")
}

func TestUnknownStageFlag(t *testing.T) {
	var log runLog
	p := load(t, &log, chain)
	_, err := p.TryRun(context.Background(), pipeline.Options{Stages: []string{"bb"}})
	var ue *pipeline.UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `did you mean "b"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestExternalInputChangeMakesStale: a Path param's folder listing is part
// of the key, so adding a source file makes the stage stale.
func TestExternalInputChangeMakesStale(t *testing.T) {
	var log runLog
	dir := t.TempDir()
	src := filepath.Join(dir, "videos")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "one.mp4"), []byte("1"), 0o644)
	p := load(t, &log, "stages:\n  a:\n    kind: write\n    params: {source: "+src+"}\n")
	p.Run(pipeline.Options{})
	p.Run(pipeline.Options{})
	expectRan(t, &log, "a")
	os.WriteFile(filepath.Join(src, "two.mp4"), []byte("2"), 0o644)
	plan, _ := pipeline.New(p.Config, pipeline.Options{}).Plan(context.Background())
	if plan[0].Action != pipeline.ActRun || !strings.Contains(plan[0].Reasons[0], "input changed") {
		t.Fatalf("plan: %+v", plan[0])
	}
	p.Run(pipeline.Options{})
	expectRan(t, &log, "a")
}

func TestPerItemCache(t *testing.T) {
	var log runLog
	p := load(t, &log, "stages:\n  it:\n    kind: items\n    params: {names: [a, b, c]}\n")
	p.Run(pipeline.Options{})
	expectRan(t, &log, "it", "it/a", "it/b", "it/c")

	// Adding one item builds only it; removing one deletes its output.
	p2 := reload(t, p, &log, "stages:\n  it:\n    kind: items\n    params: {names: [a, c, d]}\n")
	p2.Run(pipeline.Options{})
	expectRan(t, &log, "it", "it/d")
	if _, err := os.Stat(filepath.Join(p.Dir("it"), "items", "b")); !os.IsNotExist(err) {
		t.Fatalf("removed item b still on disk: %v", err)
	}
	// An item edited by hand is rebuilt, alone.
	os.WriteFile(filepath.Join(p.Dir("it"), "items", "c", "part0"), []byte("x"), 0o644)
	p2.Run(pipeline.Options{})
	expectRan(t, &log, "it", "it/c")
	// --stage re-runs the stage, but its intact items stay cached.
	p2.Run(pipeline.Options{Stages: []string{"it"}})
	expectRan(t, &log, "it")
}

func TestSecondRunFailsOnLock(t *testing.T) {
	var log runLog
	release := make(chan struct{})
	kinds := testKinds(&log, release)
	p := pipelinetest.New(t, kinds, "stages:\n  slow:\n    kind: block\n")
	done := make(chan error, 1)
	go func() {
		_, err := p.TryRun(context.Background(), pipeline.Options{})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(log.take()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first run never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, err := p.TryRun(context.Background(), pipeline.Options{})
	var le *pipeline.LockError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !strings.Contains(err.Error(), "in use by another pipeline run (PID") {
		t.Fatalf("second run: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first run harmed: %v", err)
	}
	if got := string(pipelinetest.ReadFile(t, filepath.Join(p.Dir("slow"), "out.txt"))); got != "released" {
		t.Fatalf("first run wrote %q", got)
	}
}

func TestCancelKeepsFinishedItems(t *testing.T) {
	var log runLog
	p := load(t, &log, "stages:\n  it:\n    kind: items\n    params: {names: [a, b, c, d], delay: 30ms}\n")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			time.Sleep(5 * time.Millisecond)
			if _, err := os.Stat(filepath.Join(p.Dir("it"), "items", "b")); err == nil {
				cancel()
				return
			}
		}
	}()
	_, err := p.TryRun(ctx, pipeline.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
	log.take()
	p.Run(pipeline.Options{})
	got := log.take()
	if slices.Contains(got, "it/a") || slices.Contains(got, "it/b") {
		t.Fatalf("resume rebuilt finished items: %v", got)
	}
	if !slices.Contains(got, "it/d") {
		t.Fatalf("resume did not build d: %v", got)
	}
}

func TestItemsRebuiltWhenKindVersionChanges(t *testing.T) {
	var log runLog
	src := "stages:\n  it:\n    kind: items\n    params: {names: [a, b]}\n"
	p := load(t, &log, src)
	p.Run(pipeline.Options{})
	log.take()
	kinds := testKinds(&log, nil)
	kinds[1].Version = "2"
	cfg, err := pipeline.Load("test.yaml", p.Config.Dir, []byte("workdir: "+p.Workdir+"\n"+src), pipeline.NewRegistry(kinds))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.New(cfg, pipeline.Options{}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectRan(t, &log, "it", "it/a", "it/b")
}

// TestInterruptedStageResumes: a stage that failed mid-way resumes with its
// partial files on a plain run and with --stage; --force starts it afresh.
func TestInterruptedStageResumes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts pipeline.Options
		want string
	}{
		{"plain", pipeline.Options{}, "resume=true partial"},
		{"stage", pipeline.Options{Stages: []string{"f"}}, "resume=true partial"},
		{"force", pipeline.Options{Force: true}, "resume=false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log runLog
			p := load(t, &log, "stages:\n  f:\n    kind: flaky\n")
			if _, err := p.TryRun(context.Background(), pipeline.Options{}); err == nil {
				t.Fatal("first run did not fail")
			}
			expectRan(t, &log, "resume=false")
			plan, _ := pipeline.New(p.Config, tc.opts).Plan(context.Background())
			if (tc.want != "resume=false") != plan[0].Resume {
				t.Errorf("plan resume=%v, reasons %v", plan[0].Resume, plan[0].Reasons)
			}
			p.TryRun(context.Background(), tc.opts)
			expectRan(t, &log, tc.want)
		})
	}
}

// TestItemRenamedButUnrecordedIsKept: a run killed between an item's rename
// into place and its journal record leaves a pending record; the next run
// takes the item on disk as finished instead of rebuilding it.
func TestItemRenamedButUnrecordedIsKept(t *testing.T) {
	var log runLog
	p := load(t, &log, "stages:\n  it:\n    kind: items\n    params: {names: [a, b]}\n")
	p.Run(pipeline.Options{})
	log.take()
	journal := filepath.Join(p.Workdir, ".pipeline", "items", "it.jsonl")
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(string(pipelinetest.ReadFile(t, journal))), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"rel": rec["rel"], "fp": rec["fp"], "pending": true})
		lines = append(lines, string(b))
	}
	os.WriteFile(journal, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	p.Run(pipeline.Options{Stages: []string{"it"}})
	expectRan(t, &log, "it")
	// With the item gone from disk, a pending record alone does not count.
	os.WriteFile(journal, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	os.RemoveAll(filepath.Join(p.Dir("it"), "items", "a"))
	p.Run(pipeline.Options{Stages: []string{"it"}})
	expectRan(t, &log, "it", "it/a")
}

// TestMissingToolOnlyMattersIfTheStageMustRun: on a machine without a tool
// (a GPU box without ffmpeg), stages that used it and are up to date are
// skipped; one that must run fails naming the tool; an optional tool may
// be missing.
func TestMissingToolOnlyMattersIfTheStageMustRun(t *testing.T) {
	var log runLog
	kinds := testKinds(&log, nil)
	kinds[0].Tools = []pipeline.Tool{{Name: "sh", VersionArgs: []string{"-c", "echo sh 1.0"}}}
	kinds[2].Tools = []pipeline.Tool{{Name: "sh", VersionArgs: []string{"-c", "echo sh 1.0"}, Optional: true}}
	src := "stages:\n  a:\n    kind: write\n  b:\n    kind: block\n"
	p := pipelinetest.New(t, kinds, "stages:\n  a:\n    kind: write\n")
	p.Run(pipeline.Options{})
	expectRan(t, &log, "a")

	t.Setenv("PATH", t.TempDir())
	res := p.Run(pipeline.Options{})
	if res[0].Action != pipeline.ActSkip {
		t.Fatalf("up-to-date stage not skipped without its tool: %+v", res[0])
	}
	cfg, err := pipeline.Load("test.yaml", p.Config.Dir, []byte("workdir: "+p.Workdir+"\n"+strings.Replace(src, "kind: write", "kind: write\n    params: {text: changed}", 1)), pipeline.NewRegistry(kinds))
	if err != nil {
		t.Fatal(err)
	}
	_, err = pipeline.New(cfg, pipeline.Options{}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "must run (params changed: text) but sh not found on PATH") {
		t.Fatalf("err = %v", err)
	}
	plan, err := pipeline.New(cfg, pipeline.Options{}).Plan(context.Background())
	if err != nil || !strings.Contains(strings.Join(plan[0].Reasons, ";"), "cannot run here: sh not found") {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	if plan[1].Parts.Tools["sh"] != "not installed" {
		t.Fatalf("optional tool version %q", plan[1].Parts.Tools["sh"])
	}
}
