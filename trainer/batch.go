package trainer

import (
	"fmt"
	"math/rand/v2"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
)

// example is one step's model input, built from a clean batch: the noisy
// frames assembled with the conditioning frame and mask, one timestep per
// frame, and the target to predict (the velocity v, see Prediction).
type example struct {
	layout           diffusion.Layout
	input, timesteps []float32
	target, noise    []float32
	clean, noisy     []float32
	cond             []float32
	steps            []int
	known            func(int) bool
	video            bool
	framesPerClip    int
	// context is the conditioning sequence per frame (B*T, tokens, D) of a
	// net that takes one (the SD family's text embeddings), else nil.
	context []float32
	// before and after are the clips of the global batch before and after
	// this rank's (data-parallel training): their timesteps and noise are
	// drawn and dropped, so the stream is the one process's.
	before, after int
	// sampler draws the clips' timesteps (nil: uniform).
	sampler *timestepSampler
}

// newExample sizes an example. Video examples use clips of T frames with
// frame 0 known; image examples (pretraining) use pairs of frames, the first
// the condition, the second the target.
func newExample(video bool, B, T, R int) *example {
	ex := &example{video: video}
	if video {
		ex.layout = diffusion.Layout{B: B, T: T, C: 3, H: R, W: R}
		ex.known = diffusion.FirstFrameKnown
		ex.framesPerClip = T
	} else {
		ex.layout = diffusion.Layout{B: B, T: 1, C: 3, H: R, W: R}
		ex.known = diffusion.NoneKnown
		ex.framesPerClip = 2
	}
	l := ex.layout
	ex.input = make([]float32, l.InputLen())
	ex.target = make([]float32, l.Len())
	ex.noise = make([]float32, l.Len())
	ex.noisy = make([]float32, l.Len())
	ex.clean = make([]float32, l.Len())
	ex.cond = make([]float32, l.B*l.FrameLen())
	ex.steps = make([]int, l.B)
	return ex
}

// fill builds the example from batch b, drawing timesteps and noise from
// rnd (in a fixed order: B timesteps, then the noise values).
func (ex *example) fill(b *shards.Batch, s *diffusion.Schedule, rnd *rand.Rand) error {
	l := ex.layout
	if b.B != l.B || b.T != ex.framesPerClip || b.H != l.H || b.W != l.W || b.C != 3 {
		return fmt.Errorf("batch is (%d,%d,%d,%d,%d), want (%d,%d,3,%d,%d)", b.B, b.T, b.C, b.H, b.W, l.B, ex.framesPerClip, l.H, l.W)
	}
	fl := l.FrameLen()
	if ex.video {
		copy(ex.clean, b.Data)
		copy(ex.cond, diffusion.FirstFrames(b.Data, l))
	} else {
		for i := 0; i < l.B; i++ {
			copy(ex.cond[i*fl:(i+1)*fl], b.Data[(2*i)*fl:])
			copy(ex.clean[i*fl:(i+1)*fl], b.Data[(2*i+1)*fl:])
		}
	}
	skipTimesteps(rnd, ex.sampler, ex.before, s.Steps())
	for i := range ex.steps {
		ex.steps[i] = ex.sampler.draw(rnd, s.Steps())
	}
	skipTimesteps(rnd, ex.sampler, ex.after, s.Steps())
	drawNoise(rnd, ex.noise, l.B, ex.before, ex.after)
	if err := s.QSample(ex.noisy, ex.clean, ex.noise, ex.steps, l.T*fl); err != nil {
		return err
	}
	velocity(ex.target, ex.clean, ex.noise, ex.steps, l.T*fl, s)
	if err := diffusion.AssembleInput(ex.input, ex.noisy, ex.cond, l, ex.known); err != nil {
		return err
	}
	ex.timesteps = diffusion.FrameTimesteps(ex.steps, l.T)
	return nil
}

// clone returns a copy holding its own slices (for fixed validation sets).
func (ex *example) clone() *example {
	c := *ex
	c.input = append([]float32(nil), ex.input...)
	c.timesteps = append([]float32(nil), ex.timesteps...)
	c.target = append([]float32(nil), ex.target...)
	if ex.context != nil {
		c.context = append([]float32(nil), ex.context...)
	}
	c.clean, c.noisy, c.cond, c.noise = nil, nil, nil, nil
	return &c
}
