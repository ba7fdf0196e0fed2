package shards

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
)

// Sampling modes.
const (
	// SamplingEpoch visits every window of the split once per epoch, in a
	// seeded random order; epochs follow each other without a gap, so every
	// batch is full and an epoch boundary may fall inside a batch.
	SamplingEpoch = "epoch"
	// SamplingRandom draws windows uniformly with replacement.
	SamplingRandom = "random"
)

// LoaderOptions configures a Loader. Zero values are documented per field.
type LoaderOptions struct {
	// Split is SplitTrain ("" too) or SplitVal.
	Split string
	// FramesLength is T, the frames per clip (required).
	FramesLength int
	// Stride is the frame step within a window; 0 means 1.
	Stride int
	// Resolution is the side of the square frames (H = W, required).
	Resolution int
	// Batch is B, the clips per batch; 0 means 1.
	Batch int
	// Workers decode batches in parallel; 0 means 1.
	Workers int
	// Prefetch is how many batches may be ready or in progress ahead of
	// Next; 0 means 2*Workers.
	Prefetch int
	// Seed fixes the order: the same seed gives the same batches in the
	// same order, whatever Workers is.
	Seed int64
	// Sampling is SamplingEpoch ("" too) or SamplingRandom.
	Sampling string
	// CacheBytes bounds the cache of decoded, resized frames (3*H*W bytes
	// each); 0 means 512 MiB, negative disables it. The cache changes speed,
	// never values.
	CacheBytes int64
	// StartStep skips the first StartStep batches of the stream without
	// decoding them, so a resumed training run sees exactly the batches it
	// would have seen (the first Batch returned has Step == StartStep).
	StartStep int
	// Epochs, when > 0, ends the stream after that many passes over the
	// windows (Next returns io.EOF; the last batch may be short). 0 is
	// endless.
	Epochs int
	// Parts > 1 splits every batch of Batch windows (the global batch of
	// data-parallel training) into Parts equal contiguous slices; the loader
	// decodes and returns only slice Part (0-based), this rank's. The order
	// of windows is that of the whole stream, so the ranks together read
	// what one loader of Batch would, and no window twice in an epoch.
	// Batch must be a multiple of Parts.
	Part, Parts int
}

// Batch is one batch of clips.
type Batch struct {
	// Data is (B, T, C=3, H, W) float32 in [-1, 1], RGB, on the 8-bit grid
	// (each value is q/127.5 - 1 for an integer q in 0..255).
	Data          []float32
	B, T, C, H, W int
	// Videos and Starts name each clip: its video and first frame (1-based).
	Videos []string
	Starts []int
	// Epoch is the epoch (0-based) of the batch's first clip; Step is the
	// batch's position in the stream (0-based).
	Epoch, Step int
}

// Loader yields batches of decoded clips, prefetched by worker goroutines.
type Loader struct {
	ds      *Dataset
	opt     LoaderOptions
	windows []Window
	cache   *frameCache

	order  chan chan result
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error // sticky error returned by Next
	closed sync.Once
	free   chan []float32 // recycled Batch.Data buffers
}

type job struct {
	step, epoch int
	wins        []Window
	out         chan result
}

type result struct {
	b   *Batch
	err error
}

// defaultSplitSampling fills an empty split (train) and sampling (epoch)
// and checks both; what names the loader in the error.
func defaultSplitSampling(split, sampling *string, what string) error {
	if *split == "" {
		*split = SplitTrain
	}
	if *split != SplitTrain && *split != SplitVal {
		return fmt.Errorf("shards: %s: split %q, want train or val", what, *split)
	}
	if *sampling == "" {
		*sampling = SamplingEpoch
	}
	if *sampling != SamplingEpoch && *sampling != SamplingRandom {
		return fmt.Errorf("shards: %s: sampling %q, want epoch or random", what, *sampling)
	}
	return nil
}

// NewLoader starts a loader over ds.
func NewLoader(ds *Dataset, opt LoaderOptions) (*Loader, error) {
	if err := defaultSplitSampling(&opt.Split, &opt.Sampling, "loader"); err != nil {
		return nil, err
	}
	if opt.Resolution < 1 {
		return nil, fmt.Errorf("shards: loader: resolution %d, want at least 1", opt.Resolution)
	}
	if opt.Batch == 0 {
		opt.Batch = 1
	}
	if opt.Workers == 0 {
		opt.Workers = 1
	}
	if opt.Stride == 0 {
		opt.Stride = 1
	}
	if opt.Batch < 1 || opt.Workers < 1 || opt.Epochs < 0 || opt.StartStep < 0 {
		return nil, fmt.Errorf("shards: loader: batch %d, workers %d, epochs %d, start step %d: want positive values",
			opt.Batch, opt.Workers, opt.Epochs, opt.StartStep)
	}
	if opt.Parts == 0 {
		opt.Parts = 1
	}
	if opt.Parts < 1 || opt.Part < 0 || opt.Part >= opt.Parts || opt.Batch%opt.Parts != 0 {
		return nil, fmt.Errorf("shards: loader: part %d of %d of a batch of %d: want 0 <= part < parts and the batch a multiple of parts",
			opt.Part, opt.Parts, opt.Batch)
	}
	if opt.Prefetch <= 0 {
		opt.Prefetch = 2 * opt.Workers
	}
	wins, err := ds.Windows(opt.Split, opt.FramesLength, opt.Stride)
	if err != nil {
		return nil, fmt.Errorf("shards: loader: %w", err)
	}
	if len(wins) == 0 {
		return nil, fmt.Errorf("shards: loader: the %s split has no window of %d frames with stride %d (%d videos)",
			opt.Split, opt.FramesLength, opt.Stride, len(ds.Videos(opt.Split)))
	}
	if opt.CacheBytes == 0 {
		opt.CacheBytes = 512 << 20
	}
	ds.loaders.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loader{ds: ds, opt: opt, windows: wins, order: make(chan chan result, opt.Prefetch), cancel: cancel,
		free: make(chan []float32, opt.Prefetch+opt.Workers+1)}
	if opt.CacheBytes > 0 {
		l.cache = newFrameCache(opt.CacheBytes)
	}
	jobs := make(chan job)
	l.wg.Add(1 + opt.Workers)
	go l.dispatch(ctx, jobs)
	for w := 0; w < opt.Workers; w++ {
		go l.work(ctx, jobs)
	}
	return l, nil
}

// Windows returns the number of windows the loader samples from.
func (l *Loader) Windows() int { return len(l.windows) }

// BatchesPerEpoch returns how many batches cover one epoch (the last one
// may be shared with the next epoch).
func (l *Loader) BatchesPerEpoch() int { return (len(l.windows) + l.opt.Batch - 1) / l.opt.Batch }

// dispatch assigns windows to steps, in order, and hands them to workers.
// All randomness lives here, in one goroutine: the stream does not depend on
// the number of workers.
func (l *Loader) dispatch(ctx context.Context, jobs chan<- job) {
	defer l.wg.Done()
	defer close(jobs)
	defer close(l.order)
	n := len(l.windows)
	end := -1 // stream length in windows, -1 for endless
	if l.opt.Epochs > 0 {
		end = l.opt.Epochs * n
	}
	permEpoch, perm := -1, []int(nil)
	rnd := rand.New(rand.NewPCG(uint64(l.opt.Seed), 0x72616e646f6d)) // "random"
	pos := 0
	for step := 0; end < 0 || pos < end; step++ {
		size := l.opt.Batch
		if end >= 0 && end-pos < size {
			size = end - pos
		}
		j := job{step: step, epoch: pos / n, wins: make([]Window, size), out: make(chan result, 1)}
		for i := range j.wins {
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
			j.wins[i] = l.windows[w]
		}
		pos += size
		if per := l.opt.Batch / l.opt.Parts; l.opt.Parts > 1 {
			lo, hi := min(size, l.opt.Part*per), min(size, (l.opt.Part+1)*per)
			j.wins = j.wins[lo:hi]
		}
		if step < l.opt.StartStep {
			continue
		}
		select {
		case l.order <- j.out:
		case <-ctx.Done():
			return
		}
		select {
		case jobs <- j:
		case <-ctx.Done():
			return
		}
	}
}

// work decodes batches.
func (l *Loader) work(ctx context.Context, jobs <-chan job) {
	defer l.wg.Done()
	for j := range jobs {
		if ctx.Err() != nil {
			return
		}
		b, err := l.build(j)
		j.out <- result{b, err}
	}
}

// build decodes one batch.
func (l *Loader) build(j job) (*Batch, error) {
	t, r := l.opt.FramesLength, l.opt.Resolution
	frameSize := 3 * r * r
	b := &Batch{
		Data: l.buffer(len(j.wins) * t * frameSize),
		B:    len(j.wins), T: t, C: 3, H: r, W: r,
		Videos: make([]string, len(j.wins)),
		Starts: make([]int, len(j.wins)),
		Epoch:  j.epoch, Step: j.step,
	}
	for i, w := range j.wins {
		b.Videos[i], b.Starts[i] = w.Video, w.Start
		for k := 0; k < t; k++ {
			off := (i*t + k) * frameSize
			if err := l.frameInto(b.Data[off:off+frameSize], w.Video, w.Start+k*l.opt.Stride); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// buffer returns a recycled buffer of n values, or a new one. Every value
// is overwritten by build.
func (l *Loader) buffer(n int) []float32 {
	select {
	case buf := <-l.free:
		if cap(buf) >= n {
			return buf[:n]
		}
	default:
	}
	return make([]float32, n)
}

// Recycle hands a batch's Data back for reuse by later batches, sparing
// the allocation (78 MB for 4 clips of 25 frames at 256x256). The batch
// must not be used after. Optional.
func (l *Loader) Recycle(b *Batch) {
	if b == nil || b.Data == nil {
		return
	}
	select {
	case l.free <- b.Data:
	default:
	}
	b.Data = nil
}

// frameInto writes one frame's tensor into dst, from the cache or decoded.
func (l *Loader) frameInto(dst []float32, id string, fr int) error {
	v, f, err := l.ds.frame(id, fr)
	if err != nil {
		return err
	}
	key := frameKey{v, fr}
	if q := l.cache.get(key); q != nil {
		dequantize(dst, q)
		return nil
	}
	img, err := decodeFrame(v, fr, f)
	if err != nil {
		return err
	}
	ToTensor(dst, img, l.opt.Resolution)
	q := make([]uint8, len(dst))
	quantize(q, dst)
	dequantize(dst, q)
	l.cache.put(key, q)
	return nil
}

// Next returns the next batch, io.EOF after the last one (when Epochs > 0),
// or the error that stopped the loader (a corrupt frame, named).
func (l *Loader) Next(ctx context.Context) (*Batch, error) {
	if l.err != nil {
		return nil, l.err
	}
	var out chan result
	select {
	case o, ok := <-l.order:
		if !ok {
			l.err = io.EOF
			return nil, l.err
		}
		out = o
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case res := <-out:
		if res.err != nil {
			l.err = res.err
			l.Close()
			return nil, res.err
		}
		return res.b, nil
	case <-ctx.Done():
		// The batch is lost; the stream cannot resume in order.
		l.err = fmt.Errorf("shards: loader: %w", ctx.Err())
		return nil, ctx.Err()
	}
}

// Close stops the workers and waits for them. It is safe to call more than
// once.
func (l *Loader) Close() {
	l.closed.Do(func() {
		l.cancel()
		// Drain so that a dispatcher blocked on a full order channel exits.
		go func() {
			for range l.order {
			}
		}()
		l.wg.Wait()
		l.ds.loaders.Add(-1)
	})
	if l.err == nil {
		l.err = errors.New("shards: loader closed")
	}
}
