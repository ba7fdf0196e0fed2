package trainer

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/media"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// PreviewDir holds the GIFs of the sample hook (previews/step-000100.gif).
const PreviewDir = "previews"

// previewSteps is the DDIM step count of training previews.
const previewSteps = 10

// previewHook returns the sample hook of a Train run: every `every` steps it
// turns the first frame of the first validation clip into a clip of the
// training length with the current weights and writes a GIF.
func (s *session) previewHook(every int) (Hook, error) {
	o := SampleOptions{Shards: s.c.Shards}
	res := s.c.Resolution
	cond, _, err := stillFrame(o, res)
	if err != nil {
		return Hook{}, fmt.Errorf("preview: %w", err)
	}
	var fg *model.ForwardGraph
	s.closers = append(s.closers, func() {
		if fg != nil {
			fg.Close()
		}
	})
	return Hook{Name: "sample", Every: every, Fn: func(ctx context.Context, st *Status) error {
		if err := s.opt.syncHost(); err != nil { // the CPU graph reads the host weights
			return err
		}
		if fg == nil {
			if fg, err = model.BuildForward(s.params, true, 1, s.clipT, res, res); err != nil {
				return err
			}
		}
		l := diffusion.Layout{B: 1, T: s.clipT, C: 3, H: res, W: res}
		x, err := diffusion.SampleDDIM(ctx, s.sched, epsFromV(fg.Predict, s.sched, 3, res*res), cond, l,
			diffusion.DDIMOptions{Steps: previewSteps, Seed: uint64(s.c.Seed)})
		if err != nil {
			return err
		}
		frames, err := media.Frames(x, s.clipT, res, res)
		if err != nil {
			return err
		}
		path := filepath.Join(s.c.OutDir, PreviewDir, fmt.Sprintf("step-%06d.gif", st.Step))
		return media.WriteGIF(path, frames, media.Options{FPS: 8, Scale: max(1, 128/res)})
	}}, nil
}
