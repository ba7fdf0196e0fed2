// e2e (`gpubench e2e`) runs the training half of configs/gpu-smoke.yaml on the GPU
// from an existing shards folder, through the same trainer calls the
// pretrain, train and sample stages make (trainer.Pretrain, trainer.Train,
// trainer.Sample with Device "cuda"), for GPU machines without ffmpeg where
// the synth and frames stages cannot run. bench/gpu_train.sh drives it with
// shards made by `pipeline run configs/gpu-smoke.yaml --stage pack`.

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/timelapse-ml/pipeline/trainer"
)

func e2e(args []string) {
	flag := flag.NewFlagSet("e2e", flag.ExitOnError)
	shards := flag.String("shards", "", "shards folder (index.json)")
	out := flag.String("out", "gpu-e2e", "output folder")
	preSteps := flag.Int("pretrain-steps", 300, "pretrain steps")
	trainSteps := flag.Int("train-steps", 300, "train steps")
	frames := flag.Int("sample-frames", 120, "frames of the sample")
	ddim := flag.Int("ddim-steps", 20, "DDIM steps of the sample")
	tf32 := flag.Bool("tf32", true, "TF32 matrix products")
	dev := flag.String("device", "cuda", "cuda, or cpu for a plumbing check")
	preset := flag.String("model", "timelapse", "model preset")
	res := flag.Int("res", 64, "training resolution")
	optState := flag.String("optimizer", "host", "optimizer_state of pretrain and train: host or device")
	flag.Parse(args)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx := context.Background()
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "gpubench e2e: %s: %v\n", what, err)
		os.Exit(1)
	}
	t0 := time.Now()
	pre, err := trainer.Pretrain(ctx, trainer.PretrainOptions{Common: trainer.Common{
		Shards: *shards, OutDir: filepath.Join(*out, "pretrain"), Resolution: *res, Batch: 32, Steps: *preSteps,
		LR: 2e-4, WarmupSteps: 30, Cosine: true, GradClip: 1, ValidateEvery: 100, ValBatches: 4, LogEvery: 50,
		Device: trainer.Device(*dev), TF32: *tf32, OptimizerState: trainer.OptimizerState(*optState), Log: log,
	}, Model: *preset})
	if err != nil {
		fail("pretrain", err)
	}
	t1 := time.Now()
	tr, err := trainer.Train(ctx, trainer.TrainOptions{Common: trainer.Common{
		Shards: *shards, OutDir: filepath.Join(*out, "train"), Resolution: *res, Batch: 4, Steps: *trainSteps,
		LR: 1e-4, WarmupSteps: 30, Cosine: true, WeightDecay: 0.01, GradClip: 1, CheckpointEvery: 100,
		ValidateEvery: 100, ValBatches: 4, LogEvery: 50, Device: trainer.Device(*dev), TF32: *tf32, OptimizerState: trainer.OptimizerState(*optState), Log: log,
	}, Backbone: filepath.Join(*out, "pretrain", trainer.BackboneFile), FramesLength: 25})
	if err != nil {
		fail("train", err)
	}
	t2 := time.Now()
	sm, serr := trainer.Sample(ctx, trainer.SampleOptions{
		Temporal: filepath.Join(*out, "train", trainer.TemporalFile), Backbone: filepath.Join(*out, "pretrain", trainer.BackboneFile),
		Shards: *shards, Frames: *frames, Steps: *ddim, FPS: 8, OutDir: filepath.Join(*out, "sample"), Log: log,
		Device: trainer.Device(*dev), TF32: *tf32,
	})
	t3 := time.Now()
	sum := map[string]any{
		"pretrain_steps": pre.Steps, "pretrain_loss": pre.Loss, "pretrain_val_loss": pre.ValLoss,
		"pretrain_s_per_step": pre.SecondsPerStep, "pretrain_wall_s": t1.Sub(t0).Seconds(),
		"train_steps": tr.Steps, "train_loss": tr.Loss, "train_val_loss": tr.ValLoss,
		"train_baseline_val_loss": tr.BaselineValLoss, "train_s_per_step": tr.SecondsPerStep,
		"train_wall_s": t2.Sub(t1).Seconds(), "sample_wall_s": t3.Sub(t2).Seconds(), "optimizer_state": *optState,
	}
	if sm != nil {
		sum["sample_frames"] = sm.Frames
	}
	if serr != nil {
		sum["sample_error"] = serr.Error() // e.g. no ffmpeg for the MP4; the GIF is written first
	}
	b, _ := json.Marshal(sum)
	fmt.Println(string(b))
}
