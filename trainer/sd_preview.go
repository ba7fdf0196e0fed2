package trainer

import (
	"context"
	"fmt"

	"github.com/timelapse-ml/pipeline/shards"
)

// sdPreviewer is the sample hook of an SD training run: the first frame of
// the first validation clip (the first training clip without a validation
// split) animated over the training length with the current weights, on
// its own caption (10 DDIM steps, no guidance), decoded by the VAE.
type sdPreviewer struct {
	sm       *sdModel
	den      *sdDenoise
	cond     []float32
	text     []float32
	l        sdLayout
	outDir   string
	seed     uint64
	syncHost func() error
	// decode, when set, is the VAE decoder on the GPU (else the CPU's).
	decode  func(lat []float32, n int) ([]float32, error)
	closeFn func()
}

func newSDPreviewer(sm *sdModel, ds *shards.LatentDataset, l sdLayout, c *Common, syncHost func() error) (*sdPreviewer, error) {
	cond, text, _, err := latentStill(ds)
	if err != nil {
		return nil, fmt.Errorf("preview: %w", err)
	}
	return &sdPreviewer{sm: sm, den: &sdDenoise{sm: sm}, cond: cond, text: text, l: l, outDir: c.OutDir,
		seed: uint64(c.Seed), syncHost: syncHost}, nil
}

// latentStill returns the scaled mean latent of frame 1 of the first
// validation video (else the first training video), its text embedding
// and its ID.
func latentStill(ds *shards.LatentDataset) (cond, text []float32, id string, err error) {
	vids := ds.Videos(shards.SplitVal)
	if len(vids) == 0 {
		vids = ds.Videos(shards.SplitTrain)
	}
	if len(vids) == 0 {
		return nil, nil, "", fmt.Errorf("latents %s hold no video", ds.Dir)
	}
	ix := ds.Index
	fl := ix.LatentShape[0] * ix.LatentShape[1] * ix.LatentShape[2]
	cond, lv := make([]float32, fl), make([]float32, fl)
	if err := ds.Latent(cond, lv, vids[0].ID, 1); err != nil {
		return nil, nil, "", err
	}
	for i := range cond {
		cond[i] *= float32(ix.ScalingFactor)
	}
	text = make([]float32, ix.TextShape[0]*ix.TextShape[1])
	if err := ds.Text(text, vids[0].ID); err != nil {
		return nil, nil, "", err
	}
	return cond, text, vids[0].ID, nil
}

func (p *sdPreviewer) hook(every int) Hook {
	return Hook{Name: "sample", Every: every, Fn: func(ctx context.Context, st *Status) error {
		return p.write(ctx, st.Step)
	}}
}

func (p *sdPreviewer) write(ctx context.Context, step int) error {
	if err := p.syncHost(); err != nil {
		return err
	}
	l := p.l
	x, err := p.den.run(ctx, sdSampling{Frames: l.T, Steps: previewSteps, Guidance: 1, Seed: p.seed,
		Cond: p.cond, Text: p.text, Uncond: p.text, H: l.H, W: l.W})
	if err != nil {
		return err
	}
	dec := p.decode
	if dec == nil {
		dec = func(lat []float32, n int) ([]float32, error) { return p.sm.VAE.Decode(lat, n, l.H, l.W) }
	}
	img, err := decodeLatentsWith(p.sm.VAE, dec, x, l.T, l.H, l.W, 8)
	if err != nil {
		return err
	}
	res := l.H * p.sm.VAE.Config.Downscale()
	return writePreviewGIF(p.outDir, step, img, l.T, res)
}

func (p *sdPreviewer) close() {
	p.den.close()
	if p.closeFn != nil {
		p.closeFn()
	}
}

// onGPU makes the preview run on the training backend's GPU: the UNet
// pass shares the training executor when its shape is the preview's
// (batch 1), else gets its own; the VAE decodes there too.
func (p *sdPreviewer) onGPU(b *sdGPUBackend, batch int) error {
	g := &sdGPU{dev: b.dev}
	if batch == 1 {
		p.den.build = func(int, int, int, int) (sdForward, error) { return sdGPUShared{b}, nil }
	} else {
		p.den.build = g.unet(p.sm.UNet)
	}
	dec, closeDec, err := g.decoder(p.sm.VAE, p.l.H, p.l.W)
	if err != nil {
		return err
	}
	p.decode, p.closeFn = dec, closeDec
	return nil
}

// sdGPUShared is the training executor as the preview's forward pass
// (not closed by it).
type sdGPUShared struct{ *sdGPUBackend }

func (sdGPUShared) Close() {}
