package pipeline

import "context"

// runEnv is the engine's side of a stage run.
type runEnv struct{}

func (e *runEnv) kindOf(stage string) string                       { panic("todo") }
func (e *runEnv) report(stage string, lines ...string)             { panic("todo") }
func (e *runEnv) progress(stage, unit string, total int) *Progress { panic("todo") }
func (e *runEnv) item(ctx context.Context, r *StageRun, rel, fp string, build func(string) error) (bool, error) {
	panic("todo")
}

// Progress is one stage's progress display.
type Progress struct{}

// Add records n more units done.
func (p *Progress) Add(n int) {}

// Done ends the display.
func (p *Progress) Done() {}
