package model

import (
	"context"
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/diffusion"
)

// SampleClips turns B still images cond (B, C, H, W) into B clips of
// frames frames with the video model and DDIM, returning (B, T, C, H, W).
// The graph is built for this frame count; temporal layers carry no fixed
// length.
func SampleClips(ctx context.Context, p *Params, s *diffusion.Schedule, cond []float32, l diffusion.Layout, o diffusion.DDIMOptions) ([]float32, error) {
	if l.C != p.Config.OutChannels || diffusion.InputChannels(l.C) != p.Config.InChannels {
		return nil, fmt.Errorf("model: sample: %d image channels do not fit in_channels %d / out_channels %d", l.C, p.Config.InChannels, p.Config.OutChannels)
	}
	fg, err := BuildForward(p, true, l.B, l.T, l.H, l.W)
	if err != nil {
		return nil, err
	}
	defer fg.Close()
	return diffusion.SampleDDIM(ctx, s, fg.Predict, cond, l, o)
}
