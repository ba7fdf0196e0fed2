package trainer

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// validator computes the loss on a fixed set of validation examples: the
// first ValBatches batches of the validation split in a seeded order, with
// noise and timesteps drawn once from their own seeded stream, so every
// evaluation (and the baseline) sees exactly the same inputs.
type validator struct {
	graph    predictor
	examples []*example
	shape    nn.FrameMSEShape
}

// newValidator prepares the validation set, or returns nil (with a logged
// warning) when the validation split has no window to sample.
func newValidator(s *session, ctx context.Context) (*validator, error) {
	c := s.c
	if n := s.ds.NumWindows(shards.SplitVal, s.clipT, s.stride); n == 0 {
		c.Log.Warn("no validation windows; validation is skipped", "split", shards.SplitVal,
			"videos", len(s.ds.Videos(shards.SplitVal)), "frames_length", s.clipT)
		return nil, nil
	}
	ld, err := shards.NewLoader(s.ds, shards.LoaderOptions{
		Split: shards.SplitVal, FramesLength: s.clipT, Stride: s.stride, Resolution: c.Resolution,
		Batch: c.Batch, Workers: 1, Seed: c.Seed, Sampling: shards.SamplingEpoch,
	})
	if err != nil {
		return nil, fmt.Errorf("validation: %w", err)
	}
	defer ld.Close()
	rnd := rand.New(rand.NewPCG(uint64(c.Seed), streamVal))
	v := &validator{}
	ex := newExample(s.video, c.Batch, s.clipT, c.Resolution)
	for range c.ValBatches {
		b, err := ld.Next(ctx)
		if err != nil {
			return nil, fmt.Errorf("validation batch: %w", err)
		}
		if err := ex.fill(b, s.sched, rnd); err != nil {
			return nil, fmt.Errorf("validation batch: %w", err)
		}
		v.examples = append(v.examples, ex.clone())
	}
	l := ex.layout
	v.shape = nn.FrameMSEShape{B: l.B, T: l.T, E: l.FrameLen(), Skip: s.be.skip(s.video)}
	if v.graph, err = s.be.predictor(s.params, s.video, l.B, l.T, l.H, l.W); err != nil {
		return nil, fmt.Errorf("validation graph: %w", err)
	}
	return v, nil
}

// loss returns the mean loss over the validation set with the current
// weights.
func (v *validator) loss(ctx context.Context) (float64, error) {
	var sum float64
	for _, ex := range v.examples {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		pred, err := v.graph.Predict(ex.input, ex.timesteps)
		if err != nil {
			return 0, fmt.Errorf("validation: %w", err)
		}
		sum += float64(nn.FrameMSE(pred, ex.target, v.shape))
	}
	return sum / float64(len(v.examples)), nil
}

func (v *validator) close() {
	if v.graph != nil {
		v.graph.Close()
	}
}
