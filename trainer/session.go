package trainer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"time"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/metrics"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// Noise schedule of every model trained here (recorded in checkpoints).
const (
	NoiseSchedule      = "linear"
	NoiseScheduleSteps = diffusion.DefaultSteps
)

// Output file names.
const (
	BackboneFile      = "backbone.safetensors"
	PretrainStateFile = "pretrain-state.safetensors"
	TemporalFile      = "temporal.safetensors"
	TrainStateFile    = "train-state.safetensors"
	MetricsFile       = "metrics.jsonl"
	LossPlotFile      = "loss.png"
)

// Seed streams: each use of randomness has its own PCG stream.
const (
	streamNoise = 0x6e6f697365 // "noise"
	streamVal   = 0x76616c     // "val"
)

// session is one Pretrain or Train run. It wires the parts, each built from
// explicit options: the backend (the training net), the optimizer over its
// trainable params, the feeder (data), the validator, the previewer, the
// checkpointer and the metrics log; the loop's hooks call them.
type session struct {
	c    *Common
	name string
	// shape is the training batch (video clips of shape.T frames, or frame
	// pairs); stride the frame step of a loader window.
	shape  trainShape
	stride int
	params *model.Params
	be     *backend
	opt    optimizer
	rng    *rand.PCG
	sched  *diffusion.Schedule
	ckpt   *checkpointer
	mlog   *metrics.Log
	ds     *shards.Dataset
	loader *shards.Loader
	feed   *feeder
	// rngState is the noise stream's state after the last completed step's
	// example (what a checkpoint saves; the feeder may have drawn ahead).
	rngState []byte
	val      *validator
	preview  *previewer
	ema      *optim.EMA // the weights' average (ema.go), nil without
	// sampler draws the training clips' timesteps (nil: uniform).
	sampler *timestepSampler
	steps   int
	start   int
	// ckptTotal is the planned total of the run that wrote the restored
	// checkpoint (0: fresh, or not recorded).
	ckptTotal int
	res       Result
	// extraHooks run after the built-in ones.
	extraHooks []Hook
	// sdOpts are the SD executor's options on the GPU (precision,
	// checkpointing; the backend sets Trainable).
	sdOpts gpu.SDOptions
	// net, when set, is the described net the backend trains (the SD
	// family: model.BuildNetTrain, temporal parameters trainable), else
	// the pixel model of params.Config. sched, when set before setup, is
	// the noise schedule (else NoiseSchedule); objective names schedule and
	// prediction in the loss plot's title.
	net       *model.Net
	objective string
	// dp is the session's part in a data-parallel job (dataparallel.go),
	// nil for one process.
	dp *dataParallel
}

// setup builds the graph, optimizer, checkpointer and metrics log, and
// resumes from a checkpoint when asked. meta goes into every checkpoint;
// mustMatch lists the keys a resumed checkpoint must agree on.
func (s *session) setup(weightsFile, stateFile, format string, meta map[string]string, mustMatch []string) error {
	c := s.c
	var err error
	if err := s.setupDist(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if s.sched == nil {
		if s.sched, err = diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps); err != nil {
			return err
		}
	}
	bo := backendOptions{Device: c.Device, TF32: c.TF32, Log: c.Log, Net: s.net, SD: s.sdOpts}
	if s.dp != nil {
		bo.Ordinal = s.dp.g.Env.DeviceOrdinal()
	}
	if s.be, err = newBackend(bo, s.params, s.shape); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if err := s.openDist(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	var ops []*optim.Param
	for _, q := range s.be.trainable() {
		ops = append(ops, &optim.Param{Name: q.Name, Shape: q.Shape, Data: q.Data, NoDecay: len(q.Shape) == 1})
	}
	ocfg := optim.DefaultConfig()
	ocfg.LR, ocfg.WeightDecay, ocfg.ClipNorm = c.LR, c.WeightDecay, c.GradClip
	s.steps = c.Steps
	if s.opt, err = newOptimizer(c.OptimizerState, c.Log, s.be, ocfg, ops); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.rng = rand.NewPCG(uint64(c.Seed), streamNoise)
	s.ckpt = &checkpointer{
		weightsPath: filepath.Join(c.OutDir, weightsFile), statePath: filepath.Join(c.OutDir, stateFile),
		format: format, meta: meta, params: ops, opt: s.opt, rng: s.rng,
		rngState: func() ([]byte, error) {
			if s.rngState != nil {
				return s.rngState, nil
			}
			return s.rng.MarshalBinary() // no step yet: nothing drawn ahead
		},
	}
	if err := s.setupEMA(ops); err != nil {
		return err
	}
	if c.Resume {
		step, total, err := s.ckpt.restore(mustMatch...)
		switch {
		case errors.Is(err, errNoCheckpoint):
			c.Log.Info("nothing to resume; starting fresh", slog.String("reason", err.Error()))
		case err != nil:
			return err
		default:
			s.start, s.ckptTotal = step, total
			s.res.ResumedFrom = step
			c.Log.Info("resuming", slog.Int("step", step))
			if err := s.be.weightsChanged(); err != nil {
				return err
			}
		}
	}
	if err := s.startDist(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if s.mlog, err = metrics.Open(filepath.Join(c.OutDir, MetricsFile), s.start > 0, s.start); err != nil {
		return err
	}
	return nil
}

// openData opens the shards and the training loader, positioned after the
// steps already done.
func (s *session) openData(ctx context.Context) error {
	c := s.c
	var err error
	if s.ds, err = shards.Open(c.Shards); err != nil {
		return err
	}
	s.loader, err = shards.NewLoader(s.ds, shards.LoaderOptions{
		Split: shards.SplitTrain, FramesLength: s.shape.T, Stride: s.stride, Resolution: c.Resolution,
		Batch: c.Batch, Workers: c.Workers, Seed: c.Seed, Sampling: shards.SamplingEpoch,
		StartStep: s.start, // a resumed run sees the batches a straight run would
		Part:      s.part(), Parts: s.parts(),
	})
	if err != nil {
		return err
	}
	if c.Epochs > 0 {
		s.steps = c.Epochs * s.loader.BatchesPerEpoch()
	}
	s.ckpt.meta[MetaTotalSteps] = strconv.Itoa(s.steps)
	if err := s.checkSteps(); err != nil {
		return err
	}
	sh := s.shape
	s.feed = newFeeder(s.loader, s.sched, s.rng, s.newTrainExample)
	if !c.root() {
		return nil // rank 0 validates
	}
	valShape, parts := sh, s.parts()
	valShape.B *= parts // the global batch's, in this rank's slices
	s.val, err = newValidator(ctx,
		validationSet{DS: s.ds, Sched: s.sched, Shape: valShape, Stride: s.stride, Batches: c.ValBatches, Seed: c.Seed, Log: c.Log},
		validationNet{Skip: s.be.skip(), NewPredictor: func(B, T, H, W int) (predictor, error) {
			p, err := s.be.predictor(s.params, sh.Video, B/parts, T, H, W)
			if err != nil || parts == 1 {
				return p, err
			}
			return &slicedPredictor{p: p, parts: parts}, nil
		}})
	return err
}

// part and parts are this rank's slice of the global batch (0 of 1 for
// one process).
func (s *session) part() int {
	if s.dp == nil {
		return 0
	}
	return s.dp.g.Rank()
}

func (s *session) parts() int {
	if s.dp == nil {
		return 1
	}
	return s.dp.g.World()
}

// addPreview adds the sample hook (Train's sample_every; rank 0 only).
func (s *session) addPreview(every int) error {
	if !s.c.root() {
		return nil
	}
	p, err := newPreviewer(previewOptions{
		Shards: s.c.Shards, OutDir: s.c.OutDir, Frames: s.shape.T, Resolution: s.shape.R, Seed: s.c.Seed,
		Params: s.params, Sched: s.sched, SyncHost: s.opt.syncHost,
	})
	if err != nil {
		return err
	}
	s.preview = p
	h := p.hook(every)
	write := h.Fn
	h.Fn = func(ctx context.Context, st *Status) error { // previews show the average
		return s.withEMA(func() error { return write(ctx, st) })
	}
	s.extraHooks = append(s.extraHooks, h)
	return nil
}

func (s *session) close() {
	if s.preview != nil {
		s.preview.close()
	}
	if s.feed != nil {
		s.feed.wait()
	}
	if s.loader != nil {
		s.loader.Close()
	}
	if s.val != nil {
		s.val.close()
	}
	if s.ds != nil {
		s.ds.Close()
	}
	if s.opt != nil {
		s.opt.close()
	}
	if err := s.closeDist(); err != nil {
		s.c.Log.Warn("closing the data-parallel communicator", slog.String("error", err.Error()))
	}
	s.be.close()
}

// step runs one training step on the example the feeder prepared while
// the previous step ran (and has it prepare the next).
func (s *session) step(ctx context.Context, step int) (StepResult, error) {
	if err := s.agreeToStep(); err != nil {
		return StepResult{}, err
	}
	p, err := s.feed.get(ctx, step, s.steps)
	if err != nil {
		return StepResult{}, err
	}
	ex := p.ex
	if ex.context != nil {
		if err := s.be.setContext(ex.context); err != nil {
			return StepResult{}, err
		}
	}
	loss, err := s.be.step(ex.input, ex.timesteps, ex.target)
	if err != nil {
		return StepResult{}, err
	}
	if s.dp != nil { // the ranks' gradients and loss averaged
		if loss, err = s.reduceStep(loss); err != nil {
			return StepResult{}, err
		}
	}
	if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
		return StepResult{Loss: float64(loss)}, fmt.Errorf("loss %v: %w", loss, ErrNonFinite)
	}
	st, err := s.opt.step()
	if errors.Is(err, optim.ErrNonFinite) {
		return StepResult{Loss: float64(loss), GradNorm: st.GradNorm}, fmt.Errorf("%v: %w", err, ErrNonFinite)
	}
	if err != nil {
		return StepResult{}, err
	}
	if err := s.updateEMA(step); err != nil {
		return StepResult{}, err
	}
	s.rngState = p.rngState
	return StepResult{Loss: float64(loss), GradNorm: st.GradNorm, LR: st.LR, Samples: s.c.Batch}, nil
}

// run trains from s.start to s.steps with the log, validation and
// checkpoint hooks, and returns the result.
func (s *session) run(ctx context.Context) (*Result, error) {
	c := s.c
	s.opt.setSchedule(s.schedule())
	if s.start >= s.steps {
		c.Log.Info("already trained", slog.String("job", s.name), slog.Int("step", s.start), slog.Int("steps", s.steps))
		s.res.Loss, s.res.ValLoss, s.res.SecondsPerStep = recordedResult(s.mlog.Records, s.start, c.LogEvery)
	}
	var window []float64
	var stepTime time.Duration
	var timed int
	logHook := Hook{Name: "log", Every: 1, Fn: func(_ context.Context, st *Status) error {
		r := st.Last
		s.mlog.Add(metrics.Record{Step: st.Step, Loss: r.Loss, LR: r.LR, GradNorm: r.GradNorm,
			StepSeconds: st.StepTime.Seconds(), SamplesPerSec: float64(r.Samples) / max(st.StepTime.Seconds(), 1e-9)})
		window = append(window, r.Loss)
		stepTime += st.StepTime
		timed++
		if c.OnStep != nil {
			c.OnStep(st.Step, st.Total)
		}
		if c.afterStep != nil {
			defer c.afterStep(s, st.Step)
		}
		if st.Step%c.LogEvery == 0 || st.Step == st.Total {
			// loss is the mean over the steps since the last record.
			c.Log.Info("training", slog.String("job", s.name), slog.Int("step", st.Step), slog.Int("steps", st.Total),
				slog.Float64("loss", mean(window)), slog.Float64("lr", r.LR), slog.Float64("grad_norm", r.GradNorm),
				slog.Float64("step_seconds", st.StepTime.Seconds()))
			s.res.Loss = mean(window)
			window = window[:0]
		}
		return nil
	}}
	valHook := Hook{Name: "validate", Every: c.ValidateEvery, AtEnd: true, Fn: func(ctx context.Context, st *Status) error {
		if s.val == nil {
			return nil
		}
		var v float64
		err := s.withEMA(func() (err error) { v, err = s.val.loss(ctx); return err })
		if err != nil {
			return err
		}
		s.mlog.SetValLoss(st.Step, v)
		s.res.ValLoss = v
		if math.IsNaN(v) || math.IsInf(v, 0) {
			// Recorded as null; the weights are those of a finite training
			// step, so the checkpoint of this step is still written.
			c.Log.Warn("validation loss is not finite", slog.String("job", s.name), slog.Int("step", st.Step),
				slog.String("val_loss", strconv.FormatFloat(v, 'g', -1, 64)))
			return nil
		}
		c.Log.Info("validation", slog.String("job", s.name), slog.Int("step", st.Step), slog.Float64("val_loss", v))
		return nil
	}}
	ckptHook := Hook{Name: "checkpoint", Every: c.CheckpointEvery, AtEnd: true, Fn: func(_ context.Context, st *Status) error {
		return s.checkpoint(st.Step)
	}}
	loop := &Loop{Start: s.start, Steps: s.steps, Step: s.step, Hooks: append([]Hook{logHook, valHook, ckptHook}, s.extraHooks...), Log: c.Log,
		OnInterrupt: func(_ context.Context, st *Status) error { return s.checkpoint(st.Step) }}
	st, err := loop.Run(s.loopContext(ctx))
	s.res.Steps = st.Step
	if timed > 0 {
		s.res.SecondsPerStep = stepTime.Seconds() / float64(timed)
	}
	if err != nil {
		if errors.Is(err, ErrNonFinite) {
			last := "none was written"
			if st.Step > s.start || s.start > 0 {
				last = "the last good one is kept"
			}
			err = fmt.Errorf("%s stopped: %w; checkpoint: %s", s.name, err, last)
			if ferr := s.flushMetrics(); ferr != nil {
				err = errors.Join(err, ferr)
			}
		}
		return &s.res, err
	}
	return &s.res, nil
}

// checkpoint writes the weights, optimizer and RNG state, metrics and plot
// (rank 0 only).
func (s *session) checkpoint(step int) error {
	if !s.c.root() {
		return nil
	}
	if err := s.ckpt.save(step); err != nil {
		return err
	}
	return s.flushMetrics()
}

func (s *session) flushMetrics() error {
	if !s.c.root() {
		return nil
	}
	if err := s.mlog.Flush(); err != nil {
		return err
	}
	obj := s.objective
	if obj == "" {
		obj = NoiseSchedule + " schedule, " + Prediction + "-prediction"
	}
	title := fmt.Sprintf("%s loss (%s)", s.name, obj)
	return metrics.PlotLoss(filepath.Join(s.c.OutDir, LossPlotFile), title, s.mlog.Records)
}

// recordedResult recovers the result of a run that ended at step last
// from its metrics: the mean loss of the steps its last log record covered,
// the last validation loss and the mean step time (NaN where nothing was
// recorded).
func recordedResult(recs []metrics.Record, last, logEvery int) (loss, valLoss, secondsPerStep float64) {
	var losses, times []float64
	valLoss = math.NaN()
	for _, r := range recs {
		if r.Step > 0 && r.StepSeconds > 0 {
			losses = append(losses, r.Loss)
			times = append(times, r.StepSeconds)
		}
		if r.ValLoss != nil {
			valLoss = *r.ValLoss
		}
	}
	window := last % logEvery
	if window == 0 {
		window = logEvery
	}
	return mean(losses[max(0, len(losses)-window):]), valLoss, mean(times)
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
