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

// previewer is the sample hook of a Train run: it turns the first frame of
// the first validation clip into a clip of the training length with the
// current weights and writes a GIF.
type previewer struct {
	opts previewOptions
	cond []float32
	fg   *model.ForwardGraph
}

// previewOptions are what previews are made from.
type previewOptions struct {
	// Shards is where the still frame comes from; OutDir gets PreviewDir.
	Shards, OutDir string
	// Frames and Resolution shape the clip; Seed the DDIM noise.
	Frames, Resolution int
	Seed               int64
	Params             *model.Params
	Sched              *diffusion.Schedule
	// SyncHost makes the host copies of the weights current (the preview's
	// CPU graph reads them).
	SyncHost func() error
}

func newPreviewer(o previewOptions) (*previewer, error) {
	cond, _, err := stillFrame(SampleOptions{Shards: o.Shards}, o.Resolution)
	if err != nil {
		return nil, fmt.Errorf("preview: %w", err)
	}
	return &previewer{opts: o, cond: cond}, nil
}

// hook returns the sample hook, due every `every` steps.
func (p *previewer) hook(every int) Hook {
	return Hook{Name: "sample", Every: every, Fn: func(ctx context.Context, st *Status) error {
		return p.write(ctx, st.Step)
	}}
}

// write renders the preview of step.
func (p *previewer) write(ctx context.Context, step int) error {
	o := p.opts
	if err := o.SyncHost(); err != nil {
		return err
	}
	res := o.Resolution
	if p.fg == nil {
		fg, err := model.BuildForward(o.Params, true, 1, o.Frames, res, res)
		if err != nil {
			return err
		}
		p.fg = fg
	}
	l := diffusion.Layout{B: 1, T: o.Frames, C: 3, H: res, W: res}
	x, err := diffusion.SampleDDIM(ctx, o.Sched, epsFromV(p.fg.Predict, o.Sched, 3, res*res), p.cond, l,
		diffusion.DDIMOptions{Steps: previewSteps, Seed: uint64(o.Seed)})
	if err != nil {
		return err
	}
	return writePreviewGIF(o.OutDir, step, x, o.Frames, res)
}

// writePreviewGIF writes the frames x (T frames of res x res, values in
// -1..1) as dir/previews/step-NNNNNN.gif.
func writePreviewGIF(dir string, step int, x []float32, frames, res int) error {
	imgs, err := media.Frames(x, frames, res, res)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, PreviewDir, fmt.Sprintf("step-%06d.gif", step))
	return media.WriteGIF(path, imgs, media.Options{FPS: 8, Scale: max(1, 128/res)})
}

func (p *previewer) close() {
	if p.fg != nil {
		p.fg.Close()
	}
}
