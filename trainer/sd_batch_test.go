package trainer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
)

// fillSD builds the recipe's conditioning: per frame the noisy latent
// (q_sample of the clip's latents at the clip's timestep), a zero mask and
// the clip's first-frame latent; the target is the noise; the context is
// the clip's text on every frame, or the empty prompt's when dropped
// (dropout 1: always, 0: never).
func TestFillSDConditioning(t *testing.T) {
	l := sdLayout{B: 2, T: 3, C: 4, H: 2, W: 2, Tokens: 3, D: 2}
	fl, tl := l.frameLen(), l.Tokens*l.D
	rng := rand.New(rand.NewPCG(1, 2))
	b := &shards.LatentBatch{B: 2, T: 3, C: 4, H: 2, W: 2, Tokens: 3, D: 2,
		Latents: make([]float32, 2*3*fl), Text: make([]float32, 2*tl)}
	for i := range b.Latents {
		b.Latents[i] = float32(rng.NormFloat64())
	}
	for i := range b.Text {
		b.Text[i] = float32(i + 1)
	}
	empty := []float32{-1, -2, -3, -4, -5, -6}
	s, _ := diffusion.SD15Scheduler().Schedule()
	for _, dropout := range []float64{0, 1} {
		ex := newSDExample(l)
		if err := fillSD(ex, b, s, rand.New(rand.NewPCG(3, 4)), empty, dropout); err != nil {
			t.Fatal(err)
		}
		noisy := make([]float32, len(b.Latents))
		_ = s.QSample(noisy, b.Latents, ex.target, ex.steps, l.T*fl)
		hw := l.H * l.W
		for c := 0; c < l.B; c++ {
			want := b.Text[c*tl : (c+1)*tl]
			if dropout == 1 {
				want = empty
			}
			for f := 0; f < l.T; f++ {
				i := c*l.T + f
				in := ex.input[i*(2*l.C+1)*hw : (i+1)*(2*l.C+1)*hw]
				if !slices.Equal(in[:fl], noisy[i*fl:(i+1)*fl]) {
					t.Fatalf("clip %d frame %d: noisy channels differ", c, f)
				}
				for _, m := range in[fl : fl+hw] {
					if m != 0 {
						t.Fatalf("clip %d frame %d: mask %v, want 0", c, f, m)
					}
				}
				if !slices.Equal(in[fl+hw:], b.Latents[c*l.T*fl:c*l.T*fl+fl]) {
					t.Fatalf("clip %d frame %d: masked image is not the first frame's latent", c, f)
				}
				if !slices.Equal(ex.context[i*tl:(i+1)*tl], want) {
					t.Fatalf("dropout %v clip %d frame %d: context %v, want %v", dropout, c, f, ex.context[i*tl:(i+1)*tl], want)
				}
				if ex.timesteps[i] != float32(ex.steps[c]) {
					t.Fatalf("frame timestep %v, clip's %d", ex.timesteps[i], ex.steps[c])
				}
			}
		}
	}
}
