package trainer

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
)

// sdLayout is an SD training batch: B clips of T latents of C x H x W
// (C = 4), conditioned on text embeddings of Tokens x D.
type sdLayout struct {
	B, T, C, H, W, Tokens, D int
}

func (l sdLayout) frameLen() int { return l.C * l.H * l.W }

// newSDExample sizes an example of the inpainting UNet: input (B*T, 2C+1,
// H, W), one timestep per frame, target (the noise) and context (B*T,
// Tokens, D).
func newSDExample(l sdLayout) *example {
	n := l.B * l.T * l.frameLen()
	return &example{
		video:   true,
		layout:  diffusion.Layout{B: l.B, T: l.T, C: l.C, H: l.H, W: l.W},
		input:   make([]float32, l.B*l.T*(2*l.C+1)*l.H*l.W),
		target:  make([]float32, n),
		noise:   make([]float32, n),
		noisy:   make([]float32, n),
		steps:   make([]int, l.B),
		context: make([]float32, l.B*l.T*l.Tokens*l.D),
	}
}

// assembleInpaintInput writes the inpainting UNet's input for clips of T
// frames: per frame the noisy latent (C), the mask (1 channel of value
// mask) and the masked-image latent (C; the clip's cond, the same for
// every frame), in diffusers' channel order. noisy is (B, T, C, H, W),
// cond (B, C, H, W).
func assembleInpaintInput(dst, noisy, cond []float32, B, T, C, hw int, mask float32) {
	fl := C * hw
	il := (2*C + 1) * hw
	for b := 0; b < B; b++ {
		c := cond[b*fl : (b+1)*fl]
		for t := 0; t < T; t++ {
			f := b*T + t
			d := dst[f*il : (f+1)*il]
			copy(d, noisy[f*fl:(f+1)*fl])
			m := d[fl : fl+hw]
			for i := range m {
				m[i] = mask
			}
			copy(d[fl+hw:], c)
		}
	}
}

// fillSD builds the SD training example of batch b, as the recipe trains:
// mask 0 on every frame and the clip's first-frame latent as the masked
// image of every frame; per clip one timestep, and with probability
// dropout the empty prompt's embedding instead of the video's (so the
// model supports classifier-free guidance); the target is the noise.
// Draws from rnd in a fixed order: B timesteps, B dropout draws, the
// noise values (each for the global batch in data-parallel training).
func fillSD(ex *example, b *shards.LatentBatch, s *diffusion.Schedule, rnd *rand.Rand, empty []float32, dropout float64) error {
	l := ex.layout
	fl := l.FrameLen()
	if b.B != l.B || b.T != l.T || b.C != l.C || b.H != l.H || b.W != l.W {
		return fmt.Errorf("latent batch is (%d,%d,%d,%d,%d), want (%d,%d,%d,%d,%d)", b.B, b.T, b.C, b.H, b.W, l.B, l.T, l.C, l.H, l.W)
	}
	tl := b.Tokens * b.D
	if len(empty) != tl || len(ex.context) != l.B*l.T*tl {
		return fmt.Errorf("text embedding of %d x %d values, the empty prompt's has %d", b.Tokens, b.D, len(empty))
	}
	// a data-parallel rank draws the whole global batch's values and keeps
	// its clips' (ex.before and ex.after: the others')
	skipTimesteps(rnd, nil, ex.before, s.Steps())
	for i := range ex.steps {
		ex.steps[i] = rnd.IntN(s.Steps())
	}
	skipTimesteps(rnd, nil, ex.after, s.Steps())
	skipUniform(rnd, ex.before)
	for i := 0; i < l.B; i++ {
		txt := b.Text[i*tl : (i+1)*tl]
		if rnd.Float64() < dropout {
			txt = empty
		}
		for t := 0; t < l.T; t++ {
			copy(ex.context[(i*l.T+t)*tl:], txt)
		}
	}
	skipUniform(rnd, ex.after)
	drawNoise(rnd, ex.noise, l.B, ex.before, ex.after)
	if err := s.QSample(ex.noisy, b.Latents, ex.noise, ex.steps, l.T*fl); err != nil {
		return err
	}
	copy(ex.target, ex.noise)
	cond := diffusion.FirstFrames(b.Latents, l)
	assembleInpaintInput(ex.input, ex.noisy, cond, l.B, l.T, l.C, l.H*l.W, 0)
	ex.timesteps = diffusion.FrameTimesteps(ex.steps, l.T)
	return nil
}

// sdFeed is the fill function of an SD session's feeder.
func sdFeed(loader *shards.LatentLoader, s *diffusion.Schedule, empty []float32, dropout float64) func(context.Context, *example, *rand.Rand) error {
	return func(ctx context.Context, ex *example, rnd *rand.Rand) error {
		b, err := loader.Next(ctx)
		if err != nil {
			return err
		}
		return fillSD(ex, b, s, rnd, empty, dropout)
	}
}
