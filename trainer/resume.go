package trainer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// Metadata keys of the resume check.
const (
	// MetaRunSettings is the JSON of a run's result-changing settings
	// (RunSettings); MetaRunHash its SHA-256.
	MetaRunSettings = "run_settings"
	MetaRunHash     = "run_settings_sha256"
	// MetaTotalSteps is the step count the run that wrote a checkpoint was
	// planned to end at (the cosine schedule's end).
	MetaTotalSteps = "total_steps"
)

// RunSettings are the settings that change what a Pretrain or Train run
// computes, recorded in its checkpoints: a resume is refused when any
// differs. The others change how a run gets there or how often it reports,
// not its weights: Workers, LogEvery, ValidateEvery, CheckpointEvery,
// SampleEvery, Device, TF32 and OptimizerState may be edited between an
// interrupted run and its resume (the result is bit for bit the same on one
// device; another device or TF32 differs by floating-point rounding only).
// Steps and Epochs are not in it either: raising them continues from the
// checkpoint to the new total (the learning-rate schedule is recomputed for
// it); lowering them below the checkpoint's step is ErrCheckpointAhead.
type RunSettings struct {
	Kind          string  `json:"kind"`
	ModelSHA256   string  `json:"model_sha256"`
	DataSHA256    string  `json:"data_sha256"`
	NoiseSchedule string  `json:"noise_schedule"`
	Prediction    string  `json:"prediction"`
	Resolution    int     `json:"resolution"`
	Batch         int     `json:"batch"`
	LR            float64 `json:"lr"`
	WarmupSteps   int     `json:"warmup_steps"`
	Cosine        bool    `json:"cosine"`
	WeightDecay   float64 `json:"weight_decay"`
	GradClip      float64 `json:"grad_clip"`
	Seed          int64   `json:"seed"`
	ValBatches    int     `json:"val_batches"`
	EMADecay      float64 `json:"ema_decay,omitempty"`
	// Pretrain only.
	CondGap int `json:"cond_gap,omitempty"`
	// Train only.
	BackboneSHA256 string `json:"backbone_sha256,omitempty"`
	FramesLength   int    `json:"frames_length,omitempty"`
	// TimestepSampling and MinSNRGamma are empty for uniform sampling (so
	// the settings of runs made before samplings existed are unchanged).
	TimestepSampling string  `json:"timestep_sampling,omitempty"`
	MinSNRGamma      float64 `json:"min_snr_gamma,omitempty"`
	TimestepUniform  float64 `json:"timestep_uniform_fraction,omitempty"`
}

// runSettings returns the result-changing settings of c for a run of kind
// over the model config hash; the data is identified by the hash of the
// shards' index (which lists every shard's SHA-256).
func (c *Common) runSettings(kind, modelHash string) (RunSettings, error) {
	data, err := checkpoint.FileHash(filepath.Join(c.Shards, shards.IndexFile))
	if err != nil {
		return RunSettings{}, fmt.Errorf("shards %s: %w", c.Shards, err)
	}
	return RunSettings{
		Kind: kind, ModelSHA256: modelHash, DataSHA256: data, NoiseSchedule: NoiseSchedule, Prediction: Prediction,
		Resolution: c.Resolution, Batch: c.Batch, LR: c.LR, WarmupSteps: c.WarmupSteps, Cosine: c.Cosine,
		WeightDecay: c.WeightDecay, GradClip: c.GradClip, Seed: c.Seed, ValBatches: c.ValBatches,
		EMADecay: c.EMADecay,
	}, nil
}

// addMeta adds the settings' checkpoint metadata (JSON and hash) to meta.
func (r RunSettings) addMeta(meta map[string]string) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	meta[MetaRunSettings], meta[MetaRunHash] = string(b), hex.EncodeToString(sum[:])
	return nil
}

// SettingsChangedError refuses a resume: the checkpoint was written by a
// run with other result-changing settings.
type SettingsChangedError struct {
	Checkpoint string
	// Changed lists "name: checkpoint value -> this run's value".
	Changed []string
}

func (e *SettingsChangedError) Error() string {
	return fmt.Sprintf("checkpoint %s was trained with other settings (%v); they change the results, so it is not resumed: "+
		"restore them, or move the output folder aside to start over", e.Checkpoint, e.Changed)
}

// ErrCheckpointAhead refuses a resume whose checkpoint is past the run's
// last step (steps or epochs lowered after training): the weights cannot be
// un-trained, and a shorter run with its own schedule is another result.
var ErrCheckpointAhead = errors.New("checkpoint is past the last step")

// diffSettings compares the run settings recorded in a checkpoint with
// this run's; nil when equal. A checkpoint without recorded settings
// (written before they were recorded) is accepted by the older checks alone.
func diffSettings(path string, recorded map[string]string, run map[string]string) error {
	if recorded[MetaRunHash] == "" || recorded[MetaRunHash] == run[MetaRunHash] {
		return nil
	}
	var old, cur map[string]any
	if err := json.Unmarshal([]byte(recorded[MetaRunSettings]), &old); err != nil {
		return fmt.Errorf("checkpoint %s: %s: %w", path, MetaRunSettings, err)
	}
	if err := json.Unmarshal([]byte(run[MetaRunSettings]), &cur); err != nil {
		return err
	}
	var changed []string
	for k, v := range cur {
		if fmt.Sprint(old[k]) != fmt.Sprint(v) {
			changed = append(changed, fmt.Sprintf("%s: %v -> %v", k, shortAny(old[k]), shortAny(v)))
		}
	}
	for k, v := range old {
		if _, ok := cur[k]; !ok {
			changed = append(changed, fmt.Sprintf("%s: %v -> (none)", k, shortAny(v)))
		}
	}
	slices.Sort(changed)
	if len(changed) == 0 { // same values, other encoding
		return nil
	}
	return &SettingsChangedError{Checkpoint: path, Changed: changed}
}

func shortAny(v any) any {
	if s, ok := v.(string); ok {
		return checkpoint.Short(s)
	}
	if v == nil {
		return "(none)"
	}
	return v
}

// checkSteps decides what a resumed run does with the steps it is asked
// for: past the checkpoint's planned total it continues, the schedule
// recomputed for the new total (logged); below the checkpoint's step it is
// ErrCheckpointAhead.
func (s *session) checkSteps() error {
	if s.start == 0 {
		return nil
	}
	c := s.c
	if s.start > s.steps {
		return fmt.Errorf("%w: %s is at step %d, steps is %d; set steps to %d or more to keep it, "+
			"or move the output folder aside to train a shorter run from step 0",
			ErrCheckpointAhead, s.ckpt.weightsPath, s.start, s.steps, s.start)
	}
	if s.ckptTotal == 0 || s.ckptTotal == s.steps {
		return nil
	}
	old := optim.Schedule{Warmup: c.WarmupSteps, Cosine: c.Cosine, Total: s.ckptTotal, MinFactor: scheduleMinFactor}
	cur := s.schedule()
	next := s.start + 1
	c.Log.Info("continuing to a new total; the learning-rate schedule is recomputed for it",
		slog.Int("step", s.start), slog.Int("planned_steps", s.ckptTotal), slog.Int("steps", s.steps),
		slog.Bool("cosine", c.Cosine), slog.Float64("planned_lr", c.LR*old.Factor(next)),
		slog.Float64("lr", c.LR*cur.Factor(next)))
	return nil
}

// scheduleMinFactor is the fraction of the peak rate the cosine decays to.
const scheduleMinFactor = 0.1

// schedule is the run's learning-rate schedule over s.steps.
func (s *session) schedule() optim.Schedule {
	return optim.Schedule{Warmup: s.c.WarmupSteps, Cosine: s.c.Cosine, Total: s.steps, MinFactor: scheduleMinFactor}
}

// totalSteps reads MetaTotalSteps (0 when absent).
func totalSteps(meta map[string]string) int {
	n, err := strconv.Atoi(meta[MetaTotalSteps])
	if err != nil {
		return 0
	}
	return n
}
