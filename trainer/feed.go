package trainer

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
)

// feeder keeps the step fed: while step k runs, another goroutine reads
// batch k+1 and builds its example (timesteps and noise drawn, q_sample,
// velocity target, input assembly) into the second of two example buffers.
// Only one example is built at a time, in step order, so the noise stream
// is drawn exactly as when each example was built just before its step;
// the stream's state after each example is recorded, so a checkpoint saves
// the state of its own step, not of the example prepared ahead.
type feeder struct {
	// fill reads the next batch and builds ex from it, drawing from rnd.
	fill func(ctx context.Context, ex *example, rnd *rand.Rand) error
	rng  *rand.PCG
	rnd  *rand.Rand
	bufs [2]*example
	// pending delivers the example being prepared ahead (nil: none).
	pending chan prepared
}

// prepared is the example of one step.
type prepared struct {
	step int
	ex   *example
	// rngState is the noise stream's state right after ex was drawn.
	rngState []byte
	err      error
}

func newFeeder(loader *shards.Loader, sched *diffusion.Schedule, rng *rand.PCG, newEx func() *example) *feeder {
	return newFeederFunc(func(ctx context.Context, ex *example, rnd *rand.Rand) error {
		b, err := loader.Next(ctx)
		if err != nil {
			return err
		}
		return ex.fill(b, sched, rnd)
	}, rng, newEx)
}

// newFeederFunc is a feeder over any example source (the SD family's
// latent batches).
func newFeederFunc(fill func(ctx context.Context, ex *example, rnd *rand.Rand) error, rng *rand.PCG, newEx func() *example) *feeder {
	return &feeder{fill: fill, rng: rng, rnd: rand.New(rng), bufs: [2]*example{newEx(), newEx()}}
}

// get returns the example of step (1-based), and starts preparing the
// example of step+1 unless step is last. The example stays valid until the
// next get.
func (f *feeder) get(ctx context.Context, step, last int) (prepared, error) {
	var p prepared
	if f.pending != nil {
		p = <-f.pending
		f.pending = nil
		if p.err == nil && p.step != step {
			return prepared{}, fmt.Errorf("feeder: prepared step %d, asked for step %d", p.step, step)
		}
	} else {
		p = f.prepare(ctx, step)
	}
	if p.err != nil {
		return prepared{}, p.err
	}
	if step < last {
		ch := make(chan prepared, 1)
		f.pending = ch
		go func() { ch <- f.prepare(ctx, step+1) }()
	}
	return p, nil
}

// prepare reads the next batch and builds the example of step into its
// buffer.
func (f *feeder) prepare(ctx context.Context, step int) prepared {
	ex := f.bufs[step%2]
	if err := f.fill(ctx, ex, f.rnd); err != nil {
		return prepared{step: step, err: err}
	}
	st, err := f.rng.MarshalBinary()
	if err != nil {
		return prepared{step: step, err: fmt.Errorf("rng state: %w", err)}
	}
	return prepared{step: step, ex: ex, rngState: st}
}

// wait waits for an example being prepared ahead and drops it (before the
// loader closes).
func (f *feeder) wait() {
	if f.pending != nil {
		<-f.pending
		f.pending = nil
	}
}
