package trainer

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// sdDenoise is the SD family's sampling loop: DDIM over all frames of one
// clip jointly, conditioned as in training (mask 0 and the still's latent
// as the masked image of every frame), with classifier-free guidance on
// the text: eps = eps(uncond) + g (eps(text) - eps(uncond)), both halves
// in one batch of the net with the same mask and image channels. With eta
// > 0 the variance noise is one draw per step shared by every frame.
type sdDenoise struct {
	sm *sdModel
	// fg is the forward pass for (halves, frames), built on first use by
	// build (nil: the Gorgonia CPU graph).
	fg             sdForward
	build          func(halves, frames, h, w int) (sdForward, error)
	halves, frames int
}

// sdForward is the video UNet's forward pass over a batch of fixed shape:
// the context is set once, then each DDIM step predicts.
type sdForward interface {
	SetContext(ctx []float32) error
	Predict(input, timesteps []float32) ([]float32, error)
	Close()
}

// sdSampling are the inputs of one sampling run.
type sdSampling struct {
	Frames, Steps int
	Guidance, Eta float64
	Seed          uint64
	// Cond is the still's scaled latent (C, h, w); Text and Uncond the
	// prompt's and the negative prompt's embeddings (tokens x D).
	Cond, Text, Uncond []float32
	H, W               int
	Progress           func(done, total int)
}

func (d *sdDenoise) close() {
	if d.fg != nil {
		d.fg.Close()
		d.fg = nil
	}
}

// run returns the denoised latents (Frames, C, h, w), scaled as the
// UNet sees them, frame 0 replaced by the still's latent (the loss never
// trains frame 1: it is the condition).
func (d *sdDenoise) run(ctx context.Context, o sdSampling) ([]float32, error) {
	u := d.sm.UNet
	C := u.Config.OutChannels
	hw := o.H * o.W
	fl := C * hw
	T := o.Frames
	if T < 1 || o.Steps < 1 {
		return nil, fmt.Errorf("sample: %d frames, %d steps", T, o.Steps)
	}
	if len(o.Cond) != fl {
		return nil, fmt.Errorf("sample: still latent has %d values, want %d", len(o.Cond), fl)
	}
	halves := 1
	if o.Guidance != 1 {
		halves = 2
	}
	if d.fg == nil || d.halves != halves || d.frames != T {
		d.close()
		build := d.build
		if build == nil {
			build = func(b, t, h, w int) (sdForward, error) { return model.BuildNetForward(u.Net, u.Params, b, t, h, w) }
		}
		fg, err := build(halves, T, o.H, o.W)
		if err != nil {
			return nil, err
		}
		d.fg, d.halves, d.frames = fg, halves, T
	}
	tl := len(o.Text)
	ctxv := make([]float32, halves*T*tl)
	for h := 0; h < halves; h++ {
		src := o.Text
		if halves == 2 && h == 0 {
			src = o.Uncond
		}
		if len(src) != tl {
			return nil, fmt.Errorf("sample: negative prompt embedding has %d values, the prompt's %d", len(src), tl)
		}
		for t := 0; t < T; t++ {
			copy(ctxv[(h*T+t)*tl:], src)
		}
	}
	if err := d.fg.SetContext(ctxv); err != nil {
		return nil, err
	}
	sc := d.sm.Scheduler
	ts, err := sc.DDIMTimesteps(o.Steps)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x7364)) // "sd"
	x := make([]float32, T*fl)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	noisy := make([]float32, halves*T*fl)
	cond := make([]float32, halves*fl)
	for h := 0; h < halves; h++ {
		copy(cond[h*fl:], o.Cond)
	}
	in := make([]float32, halves*T*(2*C+1)*hw)
	tf := make([]float32, halves*T)
	eps := make([]float32, T*fl)
	noise := make([]float32, fl)
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for h := 0; h < halves; h++ {
			copy(noisy[h*T*fl:], x)
		}
		assembleInpaintInput(in, noisy, cond, halves, T, C, hw, 0)
		for j := range tf {
			tf[j] = float32(t)
		}
		out, err := d.fg.Predict(in, tf)
		if err != nil {
			return nil, fmt.Errorf("sample: ddim step %d (t=%d): %w", i, t, err)
		}
		if halves == 2 {
			g := float32(o.Guidance)
			for j := range eps {
				un, te := out[j], out[T*fl+j]
				eps[j] = un + g*(te-un)
			}
		} else {
			copy(eps, out)
		}
		if o.Eta > 0 {
			for j := range noise {
				noise[j] = float32(rng.NormFloat64())
			}
		}
		if err := sc.DDIMStep(d.sm.Sched, x, eps, t, sc.DDIMPrev(t, o.Steps), o.Eta, noise); err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		if o.Progress != nil {
			o.Progress(i+1, len(ts))
		}
	}
	copy(x, o.Cond)
	return x, nil
}

// decodeLatents turns scaled latents (n, C, h, w) into images (n, 3,
// h*f, w*f) in [-1, 1] with the VAE, batch frames per call (on the CPU).
func decodeLatents(vae *model.VAE, x []float32, n, h, w, batch int) ([]float32, error) {
	return decodeLatentsWith(vae, func(lat []float32, k int) ([]float32, error) { return vae.Decode(lat, k, h, w) }, x, n, h, w, batch)
}

// decodeLatentsWith is decodeLatents with a decoder of k unscaled latents.
func decodeLatentsWith(vae *model.VAE, decode func(lat []float32, k int) ([]float32, error), x []float32, n, h, w, batch int) ([]float32, error) {
	if batch < 1 {
		batch = 1
	}
	C := vae.Config.LatentChannels
	fl := C * h * w
	if len(x) != n*fl {
		return nil, fmt.Errorf("decode: %d values for %d latents of %d", len(x), n, fl)
	}
	f := vae.Config.Downscale()
	il := vae.Config.OutChannels * h * f * w * f
	out := make([]float32, n*il)
	scaled := make([]float32, min(batch, n)*fl)
	inv := float32(1 / vae.Config.ScalingFactor)
	for i := 0; i < n; i += batch {
		k := min(batch, n-i)
		s := scaled[:k*fl]
		for j := range s {
			s[j] = x[i*fl+j] * inv
		}
		img, err := decode(s, k)
		if err != nil {
			return nil, fmt.Errorf("decode frames %d-%d: %w", i+1, i+k, err)
		}
		for j, v := range img {
			out[i*il+j] = min(max(v, -1), 1)
		}
	}
	return out, nil
}
