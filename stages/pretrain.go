package stages

import (
	"context"
	"fmt"

	"github.com/timelapse-ml/pipeline/internal/blobstore"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer"
)

// PretrainKind trains the spatial backbone on single frames of the pack
// stage's shards (trainer.Pretrain).
func PretrainKind() pipeline.Kind {
	params := []pipeline.ParamSpec{
		{Name: "model", Type: pipeline.String, Default: "tiny", Enum: []string{"tiny", "timelapse"},
			Doc: "model preset: tiny (CPU, minutes) or timelapse (the GPU recipe)"},
		{Name: "cond_gap", Type: pipeline.Int, Default: 4, Min: pipeline.Bound(1), Max: pipeline.Bound(1000),
			Doc: "the conditioning frame is this many frames before the target frame, in the same video"},
		shardsParam("pack"),
	}
	params = append(params, trainingParams(trainingDefaults{
		resolution: 32, batch: 8, steps: 300, warmup: 20, every: 100, lr: 2e-3, weightDecay: 0,
		batchDoc: "frame pairs per step",
	})...)
	return pipeline.Kind{
		Name:    "pretrain",
		Version: "2",
		Doc: "Trains the spatial backbone (a 2D UNet) as an image denoiser on single frames of the training " +
			"split, each conditioned on an earlier frame of the same video (DDPM, v-prediction, MSE). " +
			"Writes backbone.safetensors (model config and hash in its metadata), its optimizer and RNG state, " +
			"metrics.jsonl and loss.png. Needs one pack stage (or the shards param)." + trainingRerunDoc,
		Params:       params,
		Continues:    raisesTotal,
		KeepPrevious: true,
		ListURL:      blobstore.ListingDigest,
		Run:          runPretrain,
		Verify:       verifyPretrain,
	}
}

func runPretrain(ctx context.Context, r *pipeline.StageRun) error {
	shardsDir, err := shardsInput(ctx, r, "pack")
	if err != nil {
		return err
	}
	if shardsDir == "" {
		return fmt.Errorf("pretrain: needs a pack stage or the shards param (needs: %v)", r.Needs)
	}
	o := trainer.PretrainOptions{
		Common: commonOptions(r, shardsDir), Model: r.Params.String("model"), CondGap: r.Params.Int("cond_gap"),
	}
	if o.Dist, err = leadTraining(ctx, dpJob{Kind: "pretrain", Pretrain: &o}); err != nil {
		return err
	}
	res, err := trainer.Pretrain(ctx, o)
	if err != nil {
		return err
	}
	reportTraining(r, res, "")
	return nil
}
