package trainer

import (
	"context"
	"errors"
	"math"
	"testing"
)

func TestLoopHooks(t *testing.T) {
	var steps []int
	fired := map[string][]int{}
	hook := func(name string, every int, atEnd bool) Hook {
		return Hook{Name: name, Every: every, AtEnd: atEnd, Fn: func(_ context.Context, s *Status) error {
			fired[name] = append(fired[name], s.Step)
			return nil
		}}
	}
	l := &Loop{Start: 2, Steps: 10,
		Step: func(_ context.Context, step int) (StepResult, error) {
			steps = append(steps, step)
			return StepResult{Loss: 1}, nil
		},
		Hooks: []Hook{hook("log", 1, false), hook("ckpt", 4, true), hook("val", 5, true), hook("never", 0, false)},
	}
	st, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 10 || len(steps) != 8 || steps[0] != 3 {
		t.Errorf("ran steps %v, final %d", steps, st.Step)
	}
	if got := fired["ckpt"]; len(got) != 3 || got[0] != 4 || got[1] != 8 || got[2] != 10 {
		t.Errorf("ckpt fired at %v, want [4 8 10]", got)
	}
	if got := fired["val"]; len(got) != 2 || got[0] != 5 || got[1] != 10 {
		t.Errorf("val fired at %v, want [5 10] (once at 10)", got)
	}
	if len(fired["log"]) != 8 || len(fired["never"]) != 0 {
		t.Errorf("log fired %d times, never %d", len(fired["log"]), len(fired["never"]))
	}
}

func TestLoopStopsOnNonFinite(t *testing.T) {
	var ckpts []int
	l := &Loop{Steps: 10,
		Step: func(_ context.Context, step int) (StepResult, error) {
			if step == 6 {
				return StepResult{Loss: math.NaN()}, nil
			}
			return StepResult{Loss: 1}, nil
		},
		Hooks: []Hook{{Name: "ckpt", Every: 1, Fn: func(_ context.Context, s *Status) error { ckpts = append(ckpts, s.Step); return nil }}},
	}
	st, err := l.Run(context.Background())
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("err = %v, want ErrNonFinite", err)
	}
	if st.Step != 5 || ckpts[len(ckpts)-1] != 5 {
		t.Errorf("last good step %d, last checkpoint %v; want 5", st.Step, ckpts)
	}
}

func TestLoopInterruptSaves(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var saved []int
	l := &Loop{Start: 3, Steps: 100,
		Step: func(_ context.Context, step int) (StepResult, error) {
			if step == 7 {
				cancel()
			}
			return StepResult{Loss: 1}, nil
		},
		OnInterrupt: func(ctx context.Context, s *Status) error {
			if ctx.Err() != nil {
				t.Error("OnInterrupt got a cancelled context")
			}
			saved = append(saved, s.Step)
			return nil
		},
	}
	st, err := l.Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if st.Step != 7 || len(saved) != 1 || saved[0] != 7 {
		t.Errorf("stopped at %d, saved %v; want 7 and [7]", st.Step, saved)
	}

	// Cancelled before any new step: nothing to save.
	saved = nil
	l.Step = func(context.Context, int) (StepResult, error) { return StepResult{}, nil }
	if _, err := l.Run(ctx); !errors.Is(err, context.Canceled) || len(saved) != 0 {
		t.Errorf("err %v, saved %v; want Canceled and no save", err, saved)
	}
}

func TestLoopHookError(t *testing.T) {
	boom := errors.New("disk full")
	l := &Loop{Steps: 3,
		Step:  func(context.Context, int) (StepResult, error) { return StepResult{Loss: 1}, nil },
		Hooks: []Hook{{Name: "checkpoint", Every: 2, Fn: func(context.Context, *Status) error { return boom }}},
	}
	_, err := l.Run(context.Background())
	if !errors.Is(err, boom) || err.Error() != "step 2: checkpoint: disk full" {
		t.Errorf("err = %v", err)
	}
}
