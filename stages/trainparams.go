package stages

import (
	"fmt"
	"log/slog"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer"
)

// trainingParams are the params pretrain and train share; defaults differ
// per kind and are passed in.
func trainingParams(d trainingDefaults) []pipeline.ParamSpec {
	return []pipeline.ParamSpec{
		{Name: "resolution", Type: pipeline.Int, Default: d.resolution, Min: pipeline.Bound(8), Max: pipeline.Bound(1024),
			Doc: "side of the square training frames (frames are centre-cropped and resized); a multiple of 8"},
		{Name: "batch", Type: pipeline.Int, Default: d.batch, Min: pipeline.Bound(1), Max: pipeline.Bound(4096), Doc: d.batchDoc},
		{Name: "steps", Type: pipeline.Int, Default: d.steps, Min: pipeline.Bound(1), Max: pipeline.Bound(1e9), Doc: "optimizer steps (ignored when epochs is set)"},
		{Name: "epochs", Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(1e6), Doc: "passes over the training windows; 0 uses steps"},
		{Name: "lr", Type: pipeline.Float, Default: d.lr, Min: pipeline.Bound(1e-9), Max: pipeline.Bound(1), Doc: "peak AdamW learning rate"},
		{Name: "warmup_steps", Type: pipeline.Int, Default: d.warmup, Min: pipeline.Bound(0), Max: pipeline.Bound(1e9), Doc: "steps of linear learning-rate warm-up"},
		{Name: "schedule", Type: pipeline.String, Default: "cosine", Enum: []string{"constant", "cosine"},
			Doc: "learning rate after warm-up: constant, or cosine decay to a tenth by the last step"},
		{Name: "weight_decay", Type: pipeline.Float, Default: d.weightDecay, Min: pipeline.Bound(0), Max: pipeline.Bound(10), Doc: "AdamW decoupled weight decay (not applied to biases and norms)"},
		{Name: "grad_clip", Type: pipeline.Float, Default: 1.0, Min: pipeline.Bound(0), Max: pipeline.Bound(1e6), Doc: "clip gradients to this global L2 norm (0: no clipping)"},
		{Name: "ema_decay", Type: pipeline.Float, Default: 0.999, Min: pipeline.Bound(0), Max: pipeline.Bound(0.999999),
			Doc: "decay of the exponential moving average of the trained weights, which validation, previews, sampling and the weights file use (warmed up as min(decay, (1+step)/(10+step))); 0: no average"},
		{Name: "seed", Type: pipeline.Int, Default: 0, Doc: "seed of initialisation, data order, noise and timesteps"},
		{Name: "device", NoKey: true, Type: pipeline.String, Default: "cpu", Enum: []string{"cpu", "cuda", "auto"},
			Doc: "cpu; cuda trains on the GPU (trainer/gpu: backbone resident, AdamW on the host); auto picks the GPU when one is usable, else the CPU with a warning"},
		{Name: "optimizer_state", NoKey: true, Type: pipeline.String, Default: "host", Enum: []string{"host", "device"},
			Doc: "where AdamW's moments live on the GPU path: host (pinned host memory, update on all cores; the GPU holds no optimizer bytes) or device (moments and update on the GPU, for comparison); device needs device cuda (with auto falling back to the CPU it reverts to host with a warning); checkpoints are the same either way"},
		{Name: "tf32", NoKey: true, Type: pipeline.Bool, Default: false, Doc: "on the GPU, let matrix products use TF32 tensor cores (about 2x faster; strict float32 otherwise)"},
		{Name: "checkpoint_every", NoKey: true, Type: pipeline.Int, Default: d.every, Min: pipeline.Bound(0), Max: pipeline.Bound(1e9), Doc: "steps between checkpoints (0: only at the end); a resumed run continues from the last one"},
		{Name: "validate_every", NoKey: true, Type: pipeline.Int, Default: d.every, Min: pipeline.Bound(0), Max: pipeline.Bound(1e9), Doc: "steps between validation losses (0: only at the end)"},
		{Name: "val_batches", Type: pipeline.Int, Default: 4, Min: pipeline.Bound(1), Max: pipeline.Bound(1e6), Doc: "validation batches (fixed clips, noise and timesteps)"},
		{Name: "log_every", NoKey: true, Type: pipeline.Int, Default: 10, Min: pipeline.Bound(1), Max: pipeline.Bound(1e9), Doc: "steps between log lines"},
		{Name: "workers", NoKey: true, Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(256), Doc: "JPEG decoding workers (0: one per core, at most 4)"},
	}
}

// raisesTotal is Kind.Continues of pretrain and train: raising steps (with
// epochs unset) or epochs, and nothing else, continues from the last
// checkpoint to the new total; every other change of a keyed param starts
// afresh (the previous outputs are moved aside, KeepPrevious).
func raisesTotal(old, cur map[string]any) bool {
	for k := range cur {
		if _, ok := old[k]; !ok {
			return false
		}
	}
	raised := false
	for k, v := range old {
		w, ok := cur[k]
		if !ok {
			return false
		}
		if v == w {
			continue
		}
		a, aok := v.(float64)
		b, bok := w.(float64)
		if !aok || !bok || b < a || (k != "steps" && k != "epochs") {
			return false
		}
		if k == "steps" && (old["epochs"] != 0.0 || cur["epochs"] != 0.0) {
			return false // steps are ignored when epochs is set
		}
		if k == "epochs" && a == 0 {
			return false // from steps to epochs is another plan, not a longer one
		}
		raised = true
	}
	return raised
}

// trainingRerunDoc says what re-runs and what resumes, for both kinds' docs.
const trainingRerunDoc = " Editing device, optimizer_state, tf32, workers or the log, validate, checkpoint " +
	"(and sample) cadence re-runs nothing and an interrupted run resumes from its last checkpoint. " +
	"Raising steps (or epochs) continues from the last checkpoint to the new total; with the cosine " +
	"schedule the learning rate of the remaining steps follows the curve of the new total (so it rises " +
	"again where the old run had decayed). Any other change starts afresh, and the previous outputs are " +
	"moved to .pipeline/previous/<stage>-<UTC time>/ first."

type trainingDefaults struct {
	resolution, batch, steps, warmup, every int
	lr, weightDecay                         float64
	batchDoc                                string
}

// commonOptions binds the shared params.
func commonOptions(r *pipeline.StageRun, shardsDir string) trainer.Common {
	p := r.Params
	prog := r.Progress("steps", 0)
	return trainer.Common{
		Shards: shardsDir, OutDir: r.OutDir, Resume: r.Resume,
		Resolution: p.Int("resolution"), Batch: p.Int("batch"), Steps: p.Int("steps"), Epochs: p.Int("epochs"),
		LR: p.Float("lr"), WarmupSteps: p.Int("warmup_steps"), Cosine: p.String("schedule") == "cosine",
		WeightDecay: p.Float("weight_decay"), GradClip: p.Float("grad_clip"), Seed: int64(p.Int("seed")), EMADecay: p.Float("ema_decay"),
		CheckpointEvery: p.Int("checkpoint_every"), ValidateEvery: p.Int("validate_every"),
		ValBatches: p.Int("val_batches"), LogEvery: p.Int("log_every"), Workers: p.Int("workers"),
		Device: trainer.Device(p.String("device")), TF32: p.Bool("tf32"),
		OptimizerState: trainer.OptimizerState(p.String("optimizer_state")),
		Log:            r.Log,
		OnStep: func(step, total int) {
			prog.SetTotal(total)
			prog.Add(1)
			if step == total {
				prog.Done()
			}
		},
	}
}

// needOfKind returns the output folder of the one needed stage of kind, or
// "" when there is none; two are an error.
func needOfKind(r *pipeline.StageRun, kind string) (string, error) {
	var found []string
	for _, n := range r.Needs {
		if r.InputKind(n) == kind {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return r.Input(found[0]), nil
	}
	return "", fmt.Errorf("%s: needs %d stages of kind %s (%v), want one", r.Kind, len(found), kind, found)
}

// reportTraining logs a training stage's result and adds its summary line;
// baseline names the validation baseline (none for pretrain).
func reportTraining(r *pipeline.StageRun, res *trainer.Result, baseline string) {
	logResult(r.Log, r.Kind, res)
	line := fmt.Sprintf("%d steps: loss %.4f, validation loss %.4f, %.2f s/step", res.Steps, res.Loss, res.ValLoss, res.SecondsPerStep)
	if baseline != "" && res.BaselineValLoss > 0 {
		line += fmt.Sprintf("; %s %.4f (ratio %.3f)", baseline, res.BaselineValLoss, res.ValLoss/res.BaselineValLoss)
	}
	r.Report(line)
}

func logResult(log *slog.Logger, kind string, res *trainer.Result) {
	log.Info("training done", slog.String("kind", kind), slog.Int("steps", res.Steps), slog.Int("resumed_from", res.ResumedFrom),
		slog.Float64("loss", res.Loss), slog.Float64("val_loss", res.ValLoss), slog.Float64("s_per_step", res.SecondsPerStep))
}
