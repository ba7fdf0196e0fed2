package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/dist"
	"github.com/timelapse-ml/pipeline/trainer/gpu"
)

// dataParallel is a session's part in a data-parallel job (Common.Dist,
// trainer/dist): Common.Batch is the global batch and this rank steps on
// its slice [lo, hi) of every one (the loader's part, the noise and
// timesteps of the whole batch drawn and the others' dropped, so the
// stream is the one process's); after the backward pass the gradients are
// averaged over the ranks (bucketed, on the GPU as the backward pass
// produces them) and the loss too, then every rank applies the same
// update. Only rank 0 writes: checkpoints, metrics, previews, validation.
// A resume reads the checkpoint on every rank (the output folder is shared)
// and rank 0's parameters are broadcast at the start.
type dataParallel struct {
	g              *dist.Group
	lo, hi, global int
	red            *dist.Reducer
	devRed         *dist.DeviceReducer
	mem            *dist.DeviceMemory
	// outer is the run's context; the loop gets one that is cancelled
	// (stop) only when the ranks agree to stop (agreeToStep).
	outer context.Context
	stop  context.CancelFunc
}

// distActive reports whether the group needs the data-parallel path (more
// than one rank, or NCCL asked for at world size 1).
func distActive(g *dist.Group) bool { return g != nil && (g.World() > 1 || g.NCCL()) }

// root reports whether this process writes the run's files.
func (c *Common) root() bool { return c.Dist == nil || c.Dist.Root() }

// setupDist, at the start of setup, takes this rank's slice of the batch
// and rank 0's decision to resume.
func (s *session) setupDist() error {
	g := s.c.Dist
	if !distActive(g) {
		return nil
	}
	lo, hi, err := dist.Slice(s.c.Batch, g.Rank(), g.World())
	if err != nil {
		return err
	}
	s.dp = &dataParallel{g: g, lo: lo, hi: hi, global: s.c.Batch}
	s.shape.B = hi - lo
	resume := int64(0)
	if s.c.Resume {
		resume = 1
	}
	if resume, err = g.Agree(resume); err != nil {
		return err
	}
	s.c.Resume = resume == 1
	s.c.Log.Info("data-parallel training", slog.Int("rank", g.Rank()), slog.Int("world_size", g.World()),
		slog.Int("global_batch", s.c.Batch), slog.Int("rank_batch", hi-lo), slog.Bool("nccl", g.NCCL()))
	return nil
}

// openDist, once the backend is built, opens the communicator on its
// memory (the host, or the GPU with a communication stream) and the
// gradient reducer (on the GPU, fed by the backward pass itself).
func (s *session) openDist() error {
	dp := s.dp
	if dp == nil {
		return nil
	}
	var mem dist.Memory = dist.HostMemory{}
	if dev := s.be.device(); dev != nil {
		m, err := dist.NewDeviceMemory(dev)
		if err != nil {
			return err
		}
		dp.mem, mem = m, m
	}
	if err := dp.g.Open(mem); err != nil {
		return err
	}
	var sizes []int
	for _, q := range s.be.trainable() {
		sizes = append(sizes, len(q.Data))
	}
	var err error
	if dp.red, err = dp.g.NewReducer(sizes); err != nil || dp.red == nil {
		return err
	}
	if dp.mem != nil {
		if dp.devRed, err = dist.NewDeviceReducer(dp.red, dp.mem); err != nil {
			return err
		}
		return s.be.setGradReducer(dp.devRed)
	}
	return nil
}

// device is the GPU the backend trains on (nil: the CPU).
func (b *backend) device() *cuda.Device {
	switch {
	case b.sd != nil:
		return b.sd.dev
	case b.gpu != nil:
		return b.gpu.Device()
	}
	return nil
}

// setGradReducer hands the GPU backward pass's gradients to r (nil: none):
// the pixel step's, or the SD executor's (gpu.SDNet, bucket by bucket as
// its backward pass completes them).
func (b *backend) setGradReducer(r *dist.DeviceReducer) error {
	var gr gpu.GradReducer
	if r != nil {
		gr = r
	}
	switch {
	case b.sd != nil:
		return b.sd.s.SetGradReducer(gr)
	case b.gpu != nil:
		b.gpu.SetGradReducer(gr)
	}
	return nil
}

// startDist, after a resume, checks every rank resumed from the same step
// and makes every rank's trainable parameters rank 0's.
func (s *session) startDist() error {
	dp := s.dp
	if dp == nil {
		return nil
	}
	if err := dp.g.Same("the step resumed from", int64(s.start)); err != nil {
		return err
	}
	var ps [][]float32
	for _, q := range s.be.trainable() {
		ps = append(ps, q.Data)
	}
	if err := dp.g.BroadcastParams(ps); err != nil {
		return err
	}
	return s.be.weightsChanged()
}

// loopContext is the context the loop runs with: ctx for one process; in a
// data-parallel job one that ends only when every rank has agreed to stop,
// so that no rank starts a step (and its collectives) the others skip.
func (s *session) loopContext(ctx context.Context) context.Context {
	if s.dp == nil {
		return ctx
	}
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.dp.outer, s.dp.stop = ctx, stop
	return loopCtx
}

// agreeToStep, at the start of every step, asks whether any rank was
// interrupted; if one was, every rank stops here (rank 0 then writes the
// interrupt's checkpoint) and returns context.Canceled.
func (s *session) agreeToStep() error {
	dp := s.dp
	if dp == nil || dp.stop == nil {
		return nil
	}
	stopped := 0.0
	if dp.outer.Err() != nil {
		stopped = 1
	}
	n, err := dp.g.Mean(stopped)
	if err != nil {
		return err
	}
	if n > 0 {
		if stopped == 0 {
			s.c.Log.Info("another rank was interrupted; stopping", slog.Int("rank", dp.g.Rank()))
		}
		dp.stop()
		return context.Canceled
	}
	return nil
}

// reduceStep averages the last step's gradients (the CPU backend's, handed
// over all at once; the GPU's are done by then) and its loss over the
// ranks.
func (s *session) reduceStep(loss float32) (float32, error) {
	dp := s.dp
	// the loss first, over TCP: a rank that failed is noticed there (its
	// connection closes) rather than as a collective that never completes
	m, err := dp.g.Mean(float64(loss))
	if err != nil {
		return 0, err
	}
	if dp.red != nil && dp.devRed == nil {
		if err := dp.red.ReduceHost(s.be.grads()); err != nil {
			return 0, err
		}
	}
	return float32(m), nil
}

// newTrainExample sizes a training example: this rank's clips of the
// global batch, the draws of the others' skipped.
func (s *session) newTrainExample() *example {
	sh := s.shape
	ex := newExample(sh.Video, sh.B, sh.T, sh.R)
	ex.sampler = s.sampler
	if s.dp != nil {
		ex.before, ex.after = s.dp.lo, s.dp.global-s.dp.hi
	}
	return ex
}

// newSDTrainExample sizes an SD training example of layout l (this
// rank's clips), the draws of the others' skipped.
func (s *session) newSDTrainExample(l sdLayout) *example {
	ex := newSDExample(l)
	if s.dp != nil {
		ex.before, ex.after = s.dp.lo, s.dp.global-s.dp.hi
	}
	return ex
}

// rankLayout is l (the global batch's) with this rank's clips.
func (s *session) rankLayout(l sdLayout) sdLayout {
	l.B = s.shape.B
	return l
}

// slicedFor returns p, a predictor of this rank's batch, as one of the
// global batch (slice by slice) in a data-parallel job.
func (s *session) slicedFor(p predictor) predictor {
	if parts := s.parts(); parts > 1 {
		return &slicedPredictor{p: p, parts: parts}
	}
	return p
}

// skipTimesteps, skipUniform and skipNoise draw and drop n timesteps,
// uniform draws (caption dropout) or noise values
// (the other ranks' clips of the global batch, in fill's order).
func skipTimesteps(rnd *rand.Rand, ts *timestepSampler, n, steps int) {
	for range n {
		ts.draw(rnd, steps)
	}
}

func skipUniform(rnd *rand.Rand, n int) {
	for range n {
		rnd.Float64()
	}
}

// drawNoise fills noise (this rank's clips of the global batch) with
// N(0, 1) draws, skipping those of the before clips ahead of it and of
// the after clips behind it (fill's order).
func drawNoise(rnd *rand.Rand, noise []float32, clips, before, after int) {
	perClip := len(noise) / clips
	for range before * perClip {
		rnd.NormFloat64()
	}
	for i := range noise {
		noise[i] = float32(rnd.NormFloat64())
	}
	for range after * perClip {
		rnd.NormFloat64()
	}
}

// slicedPredictor runs a validation batch of the global shape through
// a predictor of this rank's shape, slice after slice (the GPU step
// predicts on its training shape), so the validation loss is the one
// process's.
type slicedPredictor struct {
	p     predictor
	parts int
	// ctx is the global batch's conditioning (the SD family), sliced too
	ctx []float32
}

// SetContext sets the conditioning of the next global batch.
func (sp *slicedPredictor) SetContext(c []float32) error { sp.ctx = c; return nil }

func (sp *slicedPredictor) Predict(input, timesteps []float32) ([]float32, error) {
	if len(input)%sp.parts != 0 || len(timesteps)%sp.parts != 0 || len(sp.ctx)%sp.parts != 0 {
		return nil, fmt.Errorf("validation batch of %d values does not split in %d", len(input), sp.parts)
	}
	in, ts, cs := len(input)/sp.parts, len(timesteps)/sp.parts, len(sp.ctx)/sp.parts
	var out []float32
	for k := range sp.parts {
		if sp.ctx != nil {
			if err := setContext(sp.p, sp.ctx[k*cs:(k+1)*cs]); err != nil {
				return nil, err
			}
		}
		y, err := sp.p.Predict(input[k*in:(k+1)*in], timesteps[k*ts:(k+1)*ts])
		if err != nil {
			return nil, err
		}
		out = append(out, y...)
	}
	return out, nil
}

func (sp *slicedPredictor) Close() { sp.p.Close() }

func (s *session) closeDist() error {
	dp := s.dp
	if dp == nil {
		return nil
	}
	var err error
	if dp.devRed != nil {
		err = errors.Join(s.be.setGradReducer(nil), dp.devRed.Close())
	}
	err = errors.Join(err, dp.g.CloseComm())
	if dp.mem != nil {
		err = errors.Join(err, dp.mem.Close())
	}
	return err
}
