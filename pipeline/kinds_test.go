package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/timelapse-ml/pipeline/pipeline"
)

// runLog counts stage and item executions across the test kinds.
type runLog struct {
	mu   sync.Mutex
	runs []string
	file string // when set, each entry is also appended to this file
}

func (l *runLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs = append(l.runs, s)
	if l.file != "" {
		f, err := os.OpenFile(l.file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			f.WriteString(s + "\n")
			f.Close()
		}
	}
}

func (l *runLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.runs
	l.runs = nil
	return out
}

// testKinds returns the kinds the engine tests use:
//   - write: writes out.txt = its `text` param + the out.txt of each need;
//   - items: one item folder per name in `names`, each two files written
//     `delay` apart (a slow, per-item stage);
//   - block: waits until its context is cancelled or `release` is closed.
func testKinds(log *runLog, release chan struct{}) []pipeline.Kind {
	write := pipeline.Kind{
		Name: "write", Version: "1", Doc: "writes a text file",
		Params: []pipeline.ParamSpec{
			{Name: "text", Type: pipeline.String, Default: "hello", Doc: "what to write"},
			{Name: "count", Type: pipeline.Int, Default: 1, Min: pipeline.Bound(0), Max: pipeline.Bound(100)},
			{Name: "ratio", Type: pipeline.Float, Default: 0.5},
			{Name: "on", Type: pipeline.Bool, Default: true},
			{Name: "wait", Type: pipeline.Duration, Default: time.Duration(0)},
			{Name: "mode", Type: pipeline.String, Default: "a", Enum: []string{"a", "b"}},
			{Name: "tags", Type: pipeline.StringList, Default: []string{}},
			{Name: "source", Type: pipeline.Path},
		},
		Run: func(ctx context.Context, r *pipeline.StageRun) error {
			log.add(r.Name)
			var b strings.Builder
			b.WriteString(r.Params.String("text"))
			for _, n := range r.Needs {
				in, err := os.ReadFile(filepath.Join(r.Input(n), "out.txt"))
				if err != nil {
					return err
				}
				b.WriteString("|" + string(in))
			}
			return r.WriteFile("out.txt", []byte(b.String()))
		},
	}
	items := pipeline.Kind{
		Name: "items", Version: "1",
		Params: []pipeline.ParamSpec{
			{Name: "names", Type: pipeline.StringList, Default: []string{"a", "b", "c"}},
			{Name: "delay", Type: pipeline.Duration, Default: time.Duration(0)},
			{Name: "salt", Type: pipeline.String, Default: ""},
		},
		Run: func(ctx context.Context, r *pipeline.StageRun) error {
			log.add(r.Name)
			for _, name := range r.Params.Strings("names") {
				fp := name + r.Params.String("salt")
				_, err := r.Item(ctx, "items/"+name, fp, func(tmp string) error {
					log.add(r.Name + "/" + name)
					if err := os.MkdirAll(tmp, 0o755); err != nil {
						return err
					}
					for i := range 2 {
						if err := os.WriteFile(filepath.Join(tmp, fmt.Sprintf("part%d", i)), []byte(name), 0o644); err != nil {
							return err
						}
						select {
						case <-ctx.Done():
							return ctx.Err()
						case <-time.After(r.Params.Duration("delay")):
						}
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return r.WriteFile("done.txt", []byte(strings.Join(r.Params.Strings("names"), ",")))
		},
	}
	block := pipeline.Kind{
		Name: "block", Version: "1",
		Run: func(ctx context.Context, r *pipeline.StageRun) error {
			log.add(r.Name)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-release:
				return r.WriteFile("out.txt", []byte("released"))
			}
		},
	}
	// flaky fails the first time (leaving a partial file, as a crash would)
	// and logs whether later attempts resume and still see it.
	flaky := pipeline.Kind{
		Name: "flaky", Version: "1",
		Run: func(ctx context.Context, r *pipeline.StageRun) error {
			partial := filepath.Join(r.OutDir, "partial")
			if _, err := os.Stat(partial); err == nil {
				log.add(fmt.Sprintf("resume=%v partial", r.Resume))
				return nil
			}
			log.add(fmt.Sprintf("resume=%v", r.Resume))
			os.WriteFile(partial, nil, 0o644)
			return fmt.Errorf("boom")
		},
	}
	// steps imitates a trainer: it counts to `total`, one line per step in
	// steps.txt, continuing from the lines there when resuming; it stops with
	// an error after step `stop_at` (a kill). Raising total continues;
	// `every` and `stop_at` are not in the key; its outputs are kept aside.
	steps := pipeline.Kind{
		Name: "steps", Version: "1", KeepPrevious: true,
		Params: []pipeline.ParamSpec{
			{Name: "total", Type: pipeline.Int, Default: 4},
			{Name: "lr", Type: pipeline.Float, Default: 0.1},
			{Name: "every", Type: pipeline.Int, Default: 1, NoKey: true},
			{Name: "stop_at", Type: pipeline.Int, Default: 0, NoKey: true},
		},
		Continues: func(old, cur map[string]any) bool {
			return old["lr"] == cur["lr"] && cur["total"].(float64) > old["total"].(float64)
		},
		Run: func(ctx context.Context, r *pipeline.StageRun) error {
			path := filepath.Join(r.OutDir, "steps.txt")
			var done []string
			if b, err := os.ReadFile(path); err == nil && r.Resume {
				done = strings.Fields(string(b))
			}
			log.add(fmt.Sprintf("%s from %d", r.Name, len(done)))
			for i := len(done) + 1; i <= r.Params.Int("total"); i++ {
				done = append(done, fmt.Sprintf("%d@%g", i, r.Params.Float("lr")))
				if err := r.WriteFile("steps.txt", []byte(strings.Join(done, "\n")+"\n")); err != nil {
					return err
				}
				if i == r.Params.Int("stop_at") {
					return fmt.Errorf("stopped at step %d", i)
				}
			}
			return nil
		},
	}
	return []pipeline.Kind{write, items, block, flaky, steps}
}
