package stages

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/internal/blobstore"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer"
)

// TrainKind trains the temporal layers of the video model on clips of the
// pack stage's shards, the backbone of the pretrain stage (or a given file)
// frozen (trainer.Train).
func TrainKind() pipeline.Kind {
	params := []pipeline.ParamSpec{
		{Name: "backbone", Type: pipeline.Path, Doc: "an existing backbone.safetensors to use instead of a needed pretrain stage's (only read)"},
		shardsParam("pack"),
		{Name: "frames_length", Type: pipeline.Int, Default: 25, Min: pipeline.Bound(2), Max: pipeline.Bound(1000), Doc: "frames per training clip; the first is the condition"},
		{Name: "timestep_sampling", Type: pipeline.String, Default: trainer.TimestepsUniform, Enum: []string{trainer.TimestepsUniform, trainer.TimestepsMinSNR, trainer.TimestepsSNRCap},
			Doc: "how a training clip's diffusion timestep is drawn: uniform, or min_snr (t drawn in proportion to the Min-SNR-gamma weight " +
				"min(SNR, gamma)/(SNR+1) of the v-prediction loss, so the steps near t = 0 and near the end are drawn rarely), or snr_cap " +
				"(in proportion to min(1, (gamma+1)/(SNR+1)): only the steps near t = 0, where the velocity target is the noise itself, are drawn less often); " +
				"validation always draws uniformly"},
		{Name: "min_snr_gamma", Type: pipeline.Float, Default: trainer.DefaultMinSNRGamma, Min: pipeline.Bound(1e-3), Max: pipeline.Bound(1e6), Doc: "gamma of timestep_sampling min_snr and snr_cap"},
		{Name: "timestep_uniform_fraction", Type: pipeline.Float, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(0.999), Doc: "with min_snr or snr_cap: the fraction of timesteps drawn uniformly instead"},
		{Name: "sample_every", NoKey: true, Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(1e9), Doc: "steps between preview GIFs in previews/ (the first validation frame animated with the current weights; 0: none)"},
	}
	params = append(params, trainingParams(trainingDefaults{
		resolution: 32, batch: 2, steps: 300, warmup: 20, every: 50, lr: 1e-3, weightDecay: 0.01,
		batchDoc: "clips per step",
	})...)
	return pipeline.Kind{
		Name:    "train",
		Version: "2",
		Doc: "Loads the backbone, builds the video model (temporal convs at identity, temporal attention " +
			"with zero output projections) and trains only the temporal parameters on clips of frames_length " +
			"frames conditioned on their first frame; the backbone file is only read. Writes " +
			"temporal.safetensors (only the temporal layers; step, config hash and backbone hash in its " +
			"metadata), the optimizer moments and RNG state beside it (an interrupted run resumes exactly), " +
			"metrics.jsonl, loss.png and train.json. Needs one pack stage (or the shards param) and one pretrain stage (or backbone)." +
			trainingRerunDoc,
		Params:       params,
		Continues:    raisesTotal,
		KeepPrevious: true,
		ListURL:      blobstore.ListingDigest,
		Run:          runTrain,
		Verify:       verifyTrain,
	}
}

func runTrain(ctx context.Context, r *pipeline.StageRun) error {
	shardsDir, err := shardsInput(ctx, r, "pack")
	if err != nil {
		return err
	}
	if shardsDir == "" {
		return fmt.Errorf("train: needs a pack stage or the shards param (needs: %v)", r.Needs)
	}
	backbone := ""
	if r.Params.Has("backbone") {
		backbone = r.Params.String("backbone")
	}
	pre, err := needOfKind(r, "pretrain")
	if err != nil {
		return err
	}
	switch {
	case backbone != "" && pre != "":
		return fmt.Errorf("train: both the backbone param and a needed pretrain stage name a backbone; keep one")
	case backbone == "" && pre == "":
		return fmt.Errorf("train: needs a pretrain stage or the backbone param")
	case backbone == "":
		backbone = filepath.Join(pre, trainer.BackboneFile)
	}
	o := trainer.TrainOptions{
		Common: commonOptions(r, shardsDir), Backbone: backbone, FramesLength: r.Params.Int("frames_length"),
		SampleEvery: r.Params.Int("sample_every"), TimestepSampling: r.Params.String("timestep_sampling"),
		MinSNRGamma: r.Params.Float("min_snr_gamma"), TimestepUniform: r.Params.Float("timestep_uniform_fraction"),
	}
	if o.Dist, err = leadTraining(ctx, dpJob{Kind: "train", Train: &o}); err != nil {
		return err
	}
	res, err := trainer.Train(ctx, o)
	if err != nil {
		return err
	}
	reportTraining(r, res, "backbone alone")
	return nil
}
