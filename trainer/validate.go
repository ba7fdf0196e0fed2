package trainer

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// validator computes the loss on a fixed set of validation examples: the
// first Batches batches of the validation split in a seeded order, with
// noise and timesteps drawn once from their own seeded stream, so every
// evaluation (and the baseline) sees exactly the same inputs.
type validator struct {
	graph    predictor
	examples []*example
	shape    nn.FrameMSEShape
}

// validationSet says which examples a validator holds: windows of the
// validation split of DS shaped like the training batches.
type validationSet struct {
	DS    *shards.Dataset
	Sched *diffusion.Schedule
	Shape trainShape
	// Stride is the frame step of a window; Batches the batch count.
	Stride, Batches int
	Seed            int64
	Log             *slog.Logger
}

// validationNet is the forward pass validation runs: the loss skip of the
// training net and a predictor for batches of the validation shape.
type validationNet struct {
	Skip         int
	NewPredictor func(B, T, H, W int) (predictor, error)
}

// newValidator prepares the validation set, or returns nil (with a logged
// warning) when the validation split has no window to sample.
func newValidator(ctx context.Context, set validationSet, net validationNet) (*validator, error) {
	sh := set.Shape
	if n := set.DS.NumWindows(shards.SplitVal, sh.T, set.Stride); n == 0 {
		set.Log.Warn("no validation windows; validation is skipped", slog.String("split", string(shards.SplitVal)),
			slog.Int("videos", len(set.DS.Videos(shards.SplitVal))), slog.Int("frames_length", sh.T))
		return nil, nil
	}
	ld, err := shards.NewLoader(set.DS, shards.LoaderOptions{
		Split: shards.SplitVal, FramesLength: sh.T, Stride: set.Stride, Resolution: sh.R,
		Batch: sh.B, Workers: 1, Seed: set.Seed, Sampling: shards.SamplingEpoch,
	})
	if err != nil {
		return nil, fmt.Errorf("validation: %w", err)
	}
	defer ld.Close()
	rnd := rand.New(rand.NewPCG(uint64(set.Seed), streamVal))
	v := &validator{}
	ex := newExample(sh.Video, sh.B, sh.T, sh.R)
	for range set.Batches {
		b, err := ld.Next(ctx)
		if err != nil {
			return nil, fmt.Errorf("validation batch: %w", err)
		}
		if err := ex.fill(b, set.Sched, rnd); err != nil {
			return nil, fmt.Errorf("validation batch: %w", err)
		}
		v.examples = append(v.examples, ex.clone())
	}
	l := ex.layout
	v.shape = nn.FrameMSEShape{B: l.B, T: l.T, E: l.FrameLen(), Skip: net.Skip}
	if v.graph, err = net.NewPredictor(l.B, l.T, l.H, l.W); err != nil {
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
		if ex.context != nil {
			if err := setContext(v.graph, ex.context); err != nil {
				return 0, fmt.Errorf("validation: %w", err)
			}
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
