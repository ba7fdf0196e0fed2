package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/timelapse-ml/pipeline/internal/blobstore"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// TrainSDKind trains the SD family's video model (trainer.TrainSD) on the
// latents stage it needs. A kind of its own rather than a param of train:
// it reads latent shards instead of frame shards, its backbone is a user's
// SD model instead of a pretrain stage's, and half of train's params
// (resolution, JPEG workers) mean nothing for it while it has its own
// (caption_dropout, group_norm, export_dtype): one spec per kind keeps
// validation and `pipeline stages` exact.
func TrainSDKind() pipeline.Kind {
	params := []pipeline.ParamSpec{
		{Name: "model", Type: pipeline.Path, Required: true,
			Doc: "the SD-1.x inpainting model (9-channel UNet): a diffusers folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/) or an original-layout single file; a pseudo-3D video UNet folder continues its temporal layers; only read"},
		{Name: "tokenizer", Type: pipeline.Path, Doc: "a CLIP tokenizer folder (for the empty prompt); unset: the model folder's tokenizer/"},
		shardsParam("latents"),
		{Name: "frames_length", Type: pipeline.Int, Default: 25, Min: pipeline.Bound(2), Max: pipeline.Bound(1000), Doc: "latents per training clip; the first is the condition, the loss covers the rest"},
		{Name: "caption_dropout", Type: pipeline.Float, Default: 0.1, Min: pipeline.Bound(0), Max: pipeline.Bound(1),
			Doc: "probability of training a clip on the empty prompt's embedding instead of its caption's, so sampling can use classifier-free guidance (the recipe had none)"},
		{Name: "group_norm", Type: pipeline.String, Default: model.GroupNormPerFrame, Enum: []string{model.GroupNormPerFrame, model.GroupNormJoint},
			Doc: "per_frame: the inflated model equals SD frame by frame at the start; joint: the recipe's code (GroupNorm over frames too)"},
		{Name: "export_dtype", Type: pipeline.String, Default: "float16", Enum: []string{"float16", "float32"},
			Doc: "precision of the exported video model (video-model/unet/, the recipe's folder layout)"},
		{Name: "precision", Type: pipeline.String, Default: string(trainer.PrecisionTF32), Enum: trainer.Precisions,
			Doc: "arithmetic of the GPU step: fp32, tf32 (TF32 tensor-core products), bf16 (bfloat16 frozen weights and products, float32 accumulation), fp16; the CPU trains in fp32 (and says so)"},
		{Name: "checkpointing", Type: pipeline.Bool, Default: true,
			Doc: "on the GPU, keep only block boundaries in the forward pass and recompute each block in the backward (gradient checkpointing: much less memory, about a third more time)"},
		{Name: "sample_every", NoKey: true, Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(1e9),
			Doc: "steps between preview GIFs in previews/ (a validation clip's first frame animated with the current weights; 0: none)"},
	}
	for _, p := range trainingParams(trainingDefaults{
		resolution: 64, batch: 1, steps: 1000, warmup: 100, every: 100, lr: 1e-4, weightDecay: 0.01, batchDoc: "clips per step",
	}) {
		if !slices.Contains([]string{"resolution", "workers", "tf32"}, p.Name) {
			params = append(params, p)
		}
	}
	return pipeline.Kind{
		Name:    "train_sd",
		Version: "1",
		Doc: "The Stable Diffusion recipe's training: inflates the model's inpainting UNet to the pseudo-3D video " +
			"UNet (temporal convs at identity, temporal attention with zero output projections) and trains only " +
			"the temporal layers on clips of frames_length latents of the latents stage, with SD's own objective " +
			"(epsilon prediction on the model's scheduler/scheduler_config.json, else SD-1.5's scaled_linear " +
			"schedule). Conditioning as the recipe's: mask 0 on every frame and the clip's first-frame latent as " +
			"the masked image of every frame, the video's text embedding (the empty prompt's with probability " +
			"caption_dropout); each step's latents are draws from N(mean, exp(logvar)) times the VAE's scaling " +
			"factor. Writes temporal.safetensors, its optimizer/RNG state (an interrupted run resumes exactly), " +
			"metrics.jsonl, loss.png, train.json (validation loss against SD frame by frame) and video-model/ " +
			"(the whole video UNet in the recipe's folder layout). Needs one latents stage (or the shards param). device cuda trains " +
			"with trainer/gpu's SD executor (precision, checkpointing; AdamW inside the step: optimizer_state host overlaps it with the backward pass, device keeps it on the card). " +
			"Under a launcher (torchrun, mpirun, srun) it trains data-parallel as train does: batch is the global batch." + trainingRerunDoc,
		Params:       params,
		Continues:    raisesTotal,
		KeepPrevious: true,
		ListURL:      blobstore.ListingDigest,
		Run:          runTrainSD,
		Verify:       verifyTrainSD,
	}
}

// verifyTrainSD decodes the checkpoint files and opens the exported video
// model (every tensor's header and offsets checked).
func verifyTrainSD(ctx context.Context, dir string, p pipeline.Params) error {
	if err := verifyTrain(ctx, dir, p); err != nil {
		return err
	}
	m, err := weights.Open(filepath.Join(dir, trainer.VideoModelDir))
	if err != nil {
		return err
	}
	defer m.Close()
	if !m.Pseudo3D {
		return fmt.Errorf("%s: not a pseudo-3D UNet", trainer.VideoModelDir)
	}
	return nil
}

func runTrainSD(ctx context.Context, r *pipeline.StageRun) error {
	lat, err := shardsInput(ctx, r, "latents")
	if err != nil {
		return err
	}
	if lat == "" {
		return fmt.Errorf("train_sd: needs a latents stage or the shards param (needs: %v)", r.Needs)
	}
	p := r.Params
	// commonOptions binds the pixel trainer's params too: the latents fix
	// the size and there are no JPEGs to decode.
	rc := *r
	rc.Params = maps.Clone(p)
	rc.Params["resolution"], rc.Params["workers"], rc.Params["tf32"] = 8, 0, false
	o := trainer.SDTrainOptions{
		Common: commonOptions(&rc, lat), Model: p.String("model"), FramesLength: p.Int("frames_length"),
		CaptionDropout: p.Float("caption_dropout"), GroupNorm: p.String("group_norm"), SampleEvery: p.Int("sample_every"),
		ExportDtype: weights.F16, Precision: trainer.Precision(p.String("precision")), Checkpointing: p.Bool("checkpointing"),
	}
	if p.String("export_dtype") == "float32" {
		o.ExportDtype = weights.F32
	}
	if p.Has("tokenizer") {
		o.Tokenizer = p.String("tokenizer")
	}
	if o.Dist, err = leadTraining(ctx, dpJob{Kind: "train_sd", TrainSD: &o}); err != nil {
		return err
	}
	res, err := trainer.TrainSD(ctx, o)
	if err != nil {
		return err
	}
	reportTraining(r, res, "SD frame by frame")
	var sum trainer.SDSummary
	if b, err := os.ReadFile(filepath.Join(r.OutDir, trainer.SummaryFile)); err == nil && json.Unmarshal(b, &sum) == nil {
		r.Report(fmt.Sprintf("step on %s in %s, checkpointing %v", sum.Device, sum.Precision, sum.Checkpointing))
	}
	return nil
}
