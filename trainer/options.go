package trainer

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/timelapse-ml/pipeline/trainer/dist"
)

// Common holds the settings shared by Pretrain and Train. Zero values are
// documented per field; Validate applies them.
type Common struct {
	// Shards is the shards folder (holding index.json).
	Shards string
	// OutDir receives checkpoints, metrics.jsonl and loss.png.
	OutDir string
	// Resume continues from the checkpoint in OutDir, if one is there.
	Resume bool
	// Resolution is the side of the square training frames.
	Resolution int
	// Batch is the number of clips (Train) or frame pairs (Pretrain) per step.
	Batch int
	// Steps is the number of optimizer steps; when Epochs > 0 it is
	// replaced by Epochs passes over the training windows.
	Steps, Epochs int
	// LR is the peak learning rate, reached after WarmupSteps linear steps;
	// Cosine decays it to a tenth by the last step (else constant).
	LR          float64
	WarmupSteps int
	Cosine      bool
	// WeightDecay is AdamW's decoupled decay; GradClip the global-norm clip
	// (0: none).
	WeightDecay, GradClip float64
	// EMADecay > 0 keeps an exponential moving average of the trainable
	// weights (see optim.EMA); validation, previews and the weights file
	// use it (0: none).
	EMADecay float64
	// Seed fixes initialisation, data order, noise and timesteps.
	Seed int64
	// CheckpointEvery, ValidateEvery and LogEvery are hook periods in steps
	// (0: only at the end; LogEvery 0 means 10).
	CheckpointEvery, ValidateEvery, LogEvery int
	// ValBatches is the number of validation batches (0 means 4).
	ValBatches int
	// Workers decode batches (0: one per core, at most 4).
	Workers int
	// Device is DeviceCPU (or "") for the Gorgonia CPU graph, DeviceCUDA
	// for the GPU step of trainer/gpu, or DeviceAuto; TF32 lets the GPU's
	// matrix products use TF32 (strict float32 otherwise).
	Device Device
	TF32   bool
	// OptimizerState is where AdamW's moments and update live (see
	// OptimizerHost, the default, and OptimizerDevice, which needs
	// DeviceCUDA; with DeviceAuto falling back to the CPU it reverts to
	// OptimizerHost with a warning).
	OptimizerState OptimizerState
	// Log receives every record of the run, from every package it calls
	// (nil: discarded).
	Log *slog.Logger `json:"-"`

	// Dist, when it has more than one rank (or NCCL at world size 1), trains
	// data-parallel (trainer/dist; see dataParallel): Batch is then the
	// global batch, a multiple of the world size. Nil: one process.
	Dist *dist.Group `json:"-"`

	// OnStep, when set, is called after each completed step (progress).
	OnStep func(step, total int) `json:"-"`

	// afterStep, set by tests, runs after each completed step.
	afterStep func(s *session, step int)
}

// defaultFramesLength is a training clip's length when FramesLength is 0.
const defaultFramesLength = 25

// framesLengthDefault sets *n to defaultFramesLength when 0 and refuses
// clips of fewer than 2 frames (the first conditions, the loss covers the
// others): Train's and TrainSD's check.
func framesLengthDefault(n *int) error {
	if *n == 0 {
		*n = defaultFramesLength
	}
	if *n < 2 {
		return fmt.Errorf("train: frames_length %d: want at least 2", *n)
	}
	return nil
}

func (c *Common) defaults() error {
	if c.Shards == "" || c.OutDir == "" {
		return fmt.Errorf("trainer: shards folder and output folder are required")
	}
	if c.Resolution < 8 || c.Resolution%8 != 0 {
		return fmt.Errorf("trainer: resolution %d: want a multiple of 8, at least 8", c.Resolution)
	}
	if c.Batch < 1 {
		return fmt.Errorf("trainer: batch %d: want at least 1", c.Batch)
	}
	if c.Steps < 1 && c.Epochs < 1 {
		return fmt.Errorf("trainer: set steps or epochs")
	}
	if c.LR <= 0 {
		return fmt.Errorf("trainer: lr %g: want > 0", c.LR)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if err := c.resolveDevice(); err != nil {
		return err
	}
	if c.LogEvery <= 0 {
		c.LogEvery = 10
	}
	if c.ValBatches <= 0 {
		c.ValBatches = 4
	}
	if c.Workers <= 0 {
		c.Workers = min(4, runtime.GOMAXPROCS(0))
	}
	return nil
}

// PretrainOptions configures Pretrain.
type PretrainOptions struct {
	Common
	// Model names a model preset (see model presets); "" means tiny.
	Model string
	// CondGap: the conditioning frame is CondGap frames before the target
	// frame of the same video (0 means 4).
	CondGap int
}

// TrainOptions configures Train.
type TrainOptions struct {
	Common
	// Backbone is the backbone.safetensors written by Pretrain; it is only
	// read.
	Backbone string
	// FramesLength is the number of frames per training clip (0 means 25).
	FramesLength int
	// TimestepSampling is how a clip's timestep is drawn: TimestepsUniform
	// ("" too), TimestepsMinSNR or TimestepsSNRCap with MinSNRGamma (0 means
	// DefaultMinSNRGamma), a fraction TimestepUniform of the draws made
	// uniformly instead. Validation always draws uniformly: its loss is
	// the plain v-prediction loss whatever the training drew.
	TimestepSampling string
	MinSNRGamma      float64
	TimestepUniform  float64
	// SampleEvery, when > 0, writes previews/step-NNNNNN.gif every that
	// many steps: the first validation frame animated with the current
	// weights (10 DDIM steps, FramesLength frames).
	SampleEvery int
}

// SampleOptions configures Sample.
type SampleOptions struct {
	// Temporal and Backbone are the checkpoints of Train and Pretrain.
	Temporal, Backbone string
	// Device as in Common: DeviceCUDA runs the network on the GPU
	// (trainer/gpu), DeviceCPU (or "") on the Gorgonia CPU graph, DeviceAuto
	// picks; TF32 as in Common.
	Device Device
	TF32   bool
	// Image is a still image (any size, centre-cropped and resized); when
	// empty, the first frame of the first validation clip in Shards is used.
	Image, Shards string
	// Resolution of the generated frames (0: the training resolution
	// recorded in the temporal checkpoint).
	Resolution int
	// Frames is the number of frames generated, the still included (0
	// means 25); Steps the DDIM steps (0 means 20).
	Frames, Steps int
	Seed          int64
	// FPS and Scale shape the GIF and MP4 (0: 8 fps, scale to >= 256 px).
	FPS   float64
	Scale int
	// OutDir receives sample.gif, sample.mp4 and sample.png.
	OutDir string
	Log    *slog.Logger
}

// Result summarises a Pretrain or Train run.
type Result struct {
	// Steps is the last step run; ResumedFrom the step a resumed run
	// started from (0 for a fresh run).
	Steps, ResumedFrom int
	// Loss is the mean training loss of the last logged steps; ValLoss the
	// final validation loss.
	Loss, ValLoss float64
	// BaselineValLoss (Train only) is the validation loss of the video
	// model with its temporal layers at initialisation (the frozen backbone
	// applied frame by frame), on the same batches, noise and timesteps.
	BaselineValLoss float64
	// SecondsPerStep is the mean step time of this run.
	SecondsPerStep float64
}

// resolveDevice resolves DeviceAuto, and rejects an unknown device or
// optimizer state, and OptimizerDevice without the GPU.
func (c *Common) resolveDevice() error {
	asked := c.Device
	dev, err := c.Device.resolve(c.Log)
	if err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	st, err := c.OptimizerState.check()
	if err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	if st == OptimizerDevice && dev != DeviceCUDA {
		if asked == DeviceAuto {
			c.Log.Warn("device auto chose the CPU: optimizer_state device ignored, AdamW runs on the host")
			st = OptimizerHost
		} else {
			return fmt.Errorf("trainer: optimizer_state device keeps AdamW's moments on the GPU and needs device cuda, "+
				"but device is %s; use optimizer_state host (the default) or device cuda", dev)
		}
	}
	c.Device, c.OptimizerState = dev, st
	return nil
}
