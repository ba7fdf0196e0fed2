package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
)

// ErrNonFinite is returned when a step's loss or gradient is NaN or Inf.
// Training stops at once: no hook runs on that step, so the last checkpoint
// written stays the last good one.
var ErrNonFinite = errors.New("trainer: loss is not finite")

// StepResult is what one training step reports.
type StepResult struct {
	Loss     float64
	GradNorm float64
	LR       float64
	// Samples is the number of training examples in the step's batch.
	Samples int
}

// Status is the loop's state, passed to hooks.
type Status struct {
	// Step is the last completed step (1-based); Total the last step to run.
	Step, Total int
	// Last is the last step's result and StepTime its duration.
	Last     StepResult
	StepTime time.Duration
	// Started is when Run began; StartStep the step count it began from.
	Started   time.Time
	StartStep int
}

// Hook runs every Every steps (when Every > 0), and after the last step when
// AtEnd is set (once, even if the last step is also a multiple of Every).
type Hook struct {
	Name  string
	Every int
	AtEnd bool
	Fn    func(ctx context.Context, s *Status) error
}

// StepFunc runs training step number step (1-based) and reports its loss.
// It must not apply an update whose loss or gradient is not finite; it
// returns an error wrapping ErrNonFinite instead.
type StepFunc func(ctx context.Context, step int) (StepResult, error)

// Loop runs steps Start+1 .. Steps, firing hooks.
type Loop struct {
	// Start is the number of steps already done (a resumed run); Steps the
	// step to stop after.
	Start, Steps int
	Step         StepFunc
	Hooks        []Hook
	// OnInterrupt, when set, runs when ctx is cancelled after at least one
	// new step completed (for a final checkpoint). It gets a context that is
	// not cancelled. Run then returns ctx.Err().
	OnInterrupt func(ctx context.Context, s *Status) error
	Log         *slog.Logger
}

// Run runs the loop. It returns the final status and the first error: a
// step's or a hook's, ErrNonFinite (wrapped with the step), or ctx.Err() after
// OnInterrupt on cancellation.
func (l *Loop) Run(ctx context.Context) (*Status, error) {
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &Status{Step: l.Start, Total: l.Steps, Started: time.Now(), StartStep: l.Start}
	interrupt := func(cause error) (*Status, error) {
		if l.OnInterrupt != nil && st.Step > l.Start {
			log.Info("interrupted; saving a checkpoint", slog.Int("step", st.Step))
			if err := l.OnInterrupt(context.WithoutCancel(ctx), st); err != nil {
				return st, errors.Join(cause, fmt.Errorf("checkpoint on interrupt at step %d: %w", st.Step, err))
			}
		}
		return st, cause
	}
	for step := l.Start + 1; step <= l.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return interrupt(err)
		}
		t0 := time.Now()
		res, err := l.Step(ctx, step)
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, ErrNonFinite) {
				return interrupt(ctx.Err())
			}
			return st, fmt.Errorf("step %d: %w", step, err)
		}
		if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) || math.IsNaN(res.GradNorm) || math.IsInf(res.GradNorm, 0) {
			return st, fmt.Errorf("step %d: loss %v, gradient norm %v: %w", step, res.Loss, res.GradNorm, ErrNonFinite)
		}
		st.Step, st.Last, st.StepTime = step, res, time.Since(t0)
		for _, h := range l.Hooks {
			due := (h.Every > 0 && step%h.Every == 0) || (h.AtEnd && step == l.Steps)
			if !due {
				continue
			}
			if err := h.Fn(ctx, st); err != nil {
				if ctx.Err() != nil {
					return interrupt(ctx.Err())
				}
				return st, fmt.Errorf("step %d: %s: %w", step, h.Name, err)
			}
		}
	}
	return st, nil
}
