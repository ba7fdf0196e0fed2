// Package pipelinetest runs pipeline configs from inline YAML in a temporary
// workdir, for stage-level tests of kinds.
package pipelinetest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline"
)

// Pipeline is a loaded test config bound to a temporary workdir.
type Pipeline struct {
	T       testing.TB
	Config  *pipeline.Config
	Workdir string
	Kinds   []pipeline.Kind
}

// New loads yamlText (without a `workdir:` key; one is set to a temporary
// folder) with the given kinds. Relative Path params resolve against dir, or
// the test's temporary folder when dir is "".
func New(t testing.TB, kinds []pipeline.Kind, yamlText string) *Pipeline {
	t.Helper()
	tmp := t.TempDir()
	src := "workdir: " + filepath.Join(tmp, "work") + "\n" + yamlText
	cfg, err := pipeline.Load("test.yaml", tmp, []byte(src), pipeline.NewRegistry(kinds))
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	return &Pipeline{T: t, Config: cfg, Workdir: cfg.Workdir, Kinds: kinds}
}

// Run runs the pipeline with opts (Log defaults to the test log) and fails
// the test on error.
func (p *Pipeline) Run(opts pipeline.Options) []pipeline.Result {
	p.T.Helper()
	res, err := p.TryRun(context.Background(), opts)
	if err != nil {
		p.T.Fatalf("run: %v", err)
	}
	return res
}

// TryRun runs the pipeline and returns its error.
func (p *Pipeline) TryRun(ctx context.Context, opts pipeline.Options) ([]pipeline.Result, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(testWriter{p.T}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return pipeline.New(p.Config, opts).Run(ctx)
}

// Dir returns a stage's output folder.
func (p *Pipeline) Dir(stage string) string { return filepath.Join(p.Workdir, stage) }

// Ran returns the names of the stages that ran (not skipped) in results.
func Ran(results []pipeline.Result) []string {
	var out []string
	for _, r := range results {
		if r.Action == pipeline.ActRun {
			out = append(out, r.Stage)
		}
	}
	return out
}

// Run is a shortcut: load yamlText with kinds and run it once.
func Run(t testing.TB, kinds []pipeline.Kind, yamlText string) *Pipeline {
	t.Helper()
	p := New(t, kinds, yamlText)
	p.Run(pipeline.Options{})
	return p
}

// IsConfigError reports whether err is a config validation error.
func IsConfigError(err error) bool {
	var ce *pipeline.ConfigError
	return errors.As(err, &ce)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// ReadFile reads a file or fails the test.
func ReadFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
