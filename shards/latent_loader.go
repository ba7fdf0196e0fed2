package shards

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
)

// LatentLoaderOptions configures a LatentLoader. Zero values are documented
// per field.
type LatentLoaderOptions struct {
	// Split is SplitTrain ("" too) or SplitVal.
	Split string
	// FramesLength is T, the latents per clip (required); Stride the frame
	// step within a window (0 means 1).
	FramesLength, Stride int
	// Batch is B, the clips per batch; 0 means 1.
	Batch int
	// Seed fixes the order and the noise: the same seed gives the same
	// batches.
	Seed int64
	// Sampling is SamplingEpoch ("" too) or SamplingRandom.
	Sampling string
	// Mean, when set, yields the Gaussian's mean instead of a sample (a
	// deterministic validation set).
	Mean bool
	// Scale multiplies every latent; 0 means the index's ScalingFactor.
	Scale float64
	// StartStep skips the first StartStep batches (a resumed run sees the
	// batches it would have seen, noise included).
	StartStep int
	// Epochs, when > 0, ends the stream after that many passes (io.EOF).
	Epochs int
	// Prefetch is how many batches are built ahead of Next; 0 means 2.
	Prefetch int
	// Part and Parts, Parts > 1, split every batch of Batch windows (the
	// global batch of data-parallel training) into Parts equal contiguous
	// slices and yield slice Part only, as LoaderOptions' do; the latents
	// are the values one loader of Batch draws for those clips (the draws
	// of the clips before the slice are made and dropped), so the ranks
	// together see exactly one process's batches. Batch must be a multiple
	// of Parts.
	Part, Parts int
}

// LatentBatch is one batch of latent clips and their videos' text
// embeddings.
type LatentBatch struct {
	// Latents is (B, T, C, H, W): each frame a draw from N(mean,
	// exp(logvar)) (or the mean), times the scale, as diffusers' training
	// scales latent_dist.sample().
	Latents       []float32
	B, T, C, H, W int
	// Text is (B, Tokens, D): each clip's video's text embedding.
	Text      []float32
	Tokens, D int
	// Videos and Starts name each clip; Epoch and Step as in Batch.
	Videos      []string
	Starts      []int
	Epoch, Step int
}

// Windows lists every window of length framesLength and stride (0 means
// 1) in a split ("" for all), ordered by video ID then start.
func (d *LatentDataset) Windows(split string, framesLength, stride int) ([]Window, error) {
	vs := d.Videos(split)
	return windowsOf(len(vs), func(i int) (string, int) { return vs[i].ID, vs[i].Frames }, framesLength, stride)
}

// LatentLoader yields latent batches built ahead by one goroutine (a batch
// is a few copies and one Gaussian draw per value, far cheaper than a
// training step).
type LatentLoader struct {
	ds      *LatentDataset
	opt     LatentLoaderOptions
	windows []Window
	out     chan latentResult
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	err     error
	closed  sync.Once
}

type latentResult struct {
	b   *LatentBatch
	err error
}

// NewLatentLoader starts a loader over ds.
func NewLatentLoader(ds *LatentDataset, opt LatentLoaderOptions) (*LatentLoader, error) {
	if err := defaultSplitSampling(&opt.Split, &opt.Sampling, "latent loader"); err != nil {
		return nil, err
	}
	if opt.Batch == 0 {
		opt.Batch = 1
	}
	if opt.Stride == 0 {
		opt.Stride = 1
	}
	if opt.Prefetch <= 0 {
		opt.Prefetch = 2
	}
	if opt.Scale == 0 {
		opt.Scale = ds.Index.ScalingFactor
	}
	if opt.Parts == 0 {
		opt.Parts = 1
	}
	if opt.Parts < 1 || opt.Part < 0 || opt.Part >= opt.Parts || opt.Batch%opt.Parts != 0 {
		return nil, fmt.Errorf("shards: latent loader: part %d of %d of a batch of %d: want 0 <= part < parts and the batch a multiple of parts",
			opt.Part, opt.Parts, opt.Batch)
	}
	if opt.Batch < 1 || opt.Epochs < 0 || opt.StartStep < 0 || !(opt.Scale > 0) {
		return nil, fmt.Errorf("shards: latent loader: batch %d, epochs %d, start step %d, scale %v: want positive values",
			opt.Batch, opt.Epochs, opt.StartStep, opt.Scale)
	}
	wins, err := ds.Windows(opt.Split, opt.FramesLength, opt.Stride)
	if err != nil {
		return nil, fmt.Errorf("shards: latent loader: %w", err)
	}
	if len(wins) == 0 {
		return nil, fmt.Errorf("shards: latent loader: the %s split of %s has no window of %d latents with stride %d (%d videos)",
			opt.Split, ds.Dir, opt.FramesLength, opt.Stride, len(ds.Videos(opt.Split)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &LatentLoader{ds: ds, opt: opt, windows: wins, out: make(chan latentResult, opt.Prefetch), cancel: cancel}
	l.wg.Add(1)
	go l.produce(ctx)
	return l, nil
}

// Windows returns the number of windows the loader samples from.
func (l *LatentLoader) Windows() int { return len(l.windows) }

// BatchesPerEpoch returns how many batches cover one epoch.
func (l *LatentLoader) BatchesPerEpoch() int { return (len(l.windows) + l.opt.Batch - 1) / l.opt.Batch }

func (l *LatentLoader) produce(ctx context.Context) {
	defer l.wg.Done()
	defer close(l.out)
	n := len(l.windows)
	end := -1
	if l.opt.Epochs > 0 {
		end = l.opt.Epochs * n
	}
	permEpoch, perm := -1, []int(nil)
	rnd := rand.New(rand.NewPCG(uint64(l.opt.Seed), 0x72616e646f6d))
	pos := 0
	for step := 0; end < 0 || pos < end; step++ {
		size := l.opt.Batch
		if end >= 0 && end-pos < size {
			size = end - pos
		}
		wins := make([]Window, size)
		for i := range wins {
			p := pos + i
			var w int
			if l.opt.Sampling == SamplingRandom {
				w = rnd.IntN(n)
			} else {
				if e := p / n; e != permEpoch {
					permEpoch = e
					perm = rand.New(rand.NewPCG(uint64(l.opt.Seed), uint64(e))).Perm(n)
				}
				w = perm[p%n]
			}
			wins[i] = l.windows[w]
		}
		epoch := pos / n
		pos += size
		if step < l.opt.StartStep {
			continue
		}
		skip := 0
		if per := l.opt.Batch / l.opt.Parts; l.opt.Parts > 1 {
			lo, hi := min(size, l.opt.Part*per), min(size, (l.opt.Part+1)*per)
			wins, skip = wins[lo:hi], lo
		}
		b, err := l.build(wins, skip, epoch, step)
		select {
		case l.out <- latentResult{b, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// build assembles one batch; its noise comes from a generator seeded by
// the seed and the step alone, skip clips' draws dropped first (the clips
// of the global batch before this part).
func (l *LatentLoader) build(wins []Window, skip, epoch, step int) (*LatentBatch, error) {
	ix := l.ds.Index
	c, h, w := ix.LatentShape[0], ix.LatentShape[1], ix.LatentShape[2]
	tk, d := ix.TextShape[0], ix.TextShape[1]
	t := l.opt.FramesLength
	fn := c * h * w
	b := &LatentBatch{B: len(wins), T: t, C: c, H: h, W: w, Tokens: tk, D: d, Epoch: epoch, Step: step,
		Latents: make([]float32, len(wins)*t*fn), Text: make([]float32, len(wins)*tk*d),
		Videos: make([]string, len(wins)), Starts: make([]int, len(wins))}
	rng := rand.New(rand.NewPCG(uint64(l.opt.Seed)^0x6c6174656e7473, uint64(step))) // "latents"
	lv := make([]float32, fn)
	scale := l.opt.Scale
	if !l.opt.Mean {
		for range skip * t * fn {
			rng.NormFloat64()
		}
	}
	for i, win := range wins {
		b.Videos[i], b.Starts[i] = win.Video, win.Start
		if err := l.ds.Text(b.Text[i*tk*d:(i+1)*tk*d], win.Video); err != nil {
			return nil, err
		}
		for k := 0; k < t; k++ {
			dst := b.Latents[(i*t+k)*fn : (i*t+k+1)*fn]
			if err := l.ds.Latent(dst, lv, win.Video, win.Start+k*l.opt.Stride); err != nil {
				return nil, err
			}
			for j := range dst {
				m := float64(dst[j])
				if !l.opt.Mean {
					m += math.Exp(0.5*float64(lv[j])) * rng.NormFloat64()
				}
				dst[j] = float32(m * scale)
			}
		}
	}
	return b, nil
}

// Next returns the next batch, io.EOF after the last (Epochs > 0), or the
// error that stopped the loader.
func (l *LatentLoader) Next(ctx context.Context) (*LatentBatch, error) {
	if l.err != nil {
		return nil, l.err
	}
	select {
	case r, ok := <-l.out:
		if !ok {
			l.err = io.EOF
			return nil, l.err
		}
		if r.err != nil {
			l.err = r.err
			return nil, r.err
		}
		return r.b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the loader; safe to call more than once.
func (l *LatentLoader) Close() {
	l.closed.Do(func() {
		l.cancel()
		go func() {
			for range l.out {
			}
		}()
		l.wg.Wait()
	})
	if l.err == nil {
		l.err = errors.New("shards: latent loader closed")
	}
}
