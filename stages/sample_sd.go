package stages

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer"
)

// SampleSDKind turns a still image into a timelapse with the video model
// of the train_sd stage it needs (trainer.SampleSD).
func SampleSDKind() pipeline.Kind {
	return pipeline.Kind{
		Name:    "sample_sd",
		Version: "1",
		Doc: "Generates a timelapse from a still image with the train_sd stage's video model: the image (any size; " +
			"centre-cropped and resized to the training resolution) is VAE-encoded once and given to every frame " +
			"as the masked image with mask 0, as in training; DDIM denoises all frames jointly with classifier-free " +
			"guidance on the prompt against the negative prompt (variance noise shared across frames when eta > 0); " +
			"the VAE decodes the frames in batches. Without an image, the first frame of a validation clip (and its " +
			"caption unless prompt is set). Writes sample.gif, sample.mp4 (with ffmpeg), sample.png (contact sheet) " +
			"and still.png. Needs one train_sd stage.",
		Params: []pipeline.ParamSpec{
			{Name: "image", Type: pipeline.Path, Doc: "still image to animate (JPEG, PNG, ...); default: the first frame of a validation clip"},
			{Name: "prompt", Type: pipeline.String, Doc: "what the clip shows; default: the validation clip's caption without image, else the empty prompt"},
			{Name: "negative_prompt", Type: pipeline.String, Default: "", Doc: "the unconditional half of guidance"},
			{Name: "guidance_scale", Type: pipeline.Float, Default: 7.5, Min: pipeline.Bound(1), Max: pipeline.Bound(100),
				Doc: "classifier-free guidance scale (1: the prompt alone, one UNet pass per step instead of two)"},
			{Name: "steps", Type: pipeline.Int, Default: 50, Min: pipeline.Bound(1), Max: pipeline.Bound(1000), Doc: "DDIM denoising steps"},
			{Name: "eta", Type: pipeline.Float, Default: 0.0, Min: pipeline.Bound(0), Max: pipeline.Bound(1), Doc: "DDIM variance (0: deterministic); its noise is one draw per step shared by every frame"},
			{Name: "frames", Type: pipeline.Int, Default: 25, Min: pipeline.Bound(2), Max: pipeline.Bound(2000), Doc: "frames to generate, the still included (any length: 120 works)"},
			{Name: "seed", Type: pipeline.Int, Default: 0, Doc: "seed of the initial and variance noise"},
			{Name: "decode_batch", NoKey: true, Type: pipeline.Int, Default: 8, Min: pipeline.Bound(1), Max: pipeline.Bound(1024), Doc: "frames per VAE decoder call"},
			{Name: "fps", Type: pipeline.Float, Default: 8.0, Min: pipeline.Bound(0.1), Max: pipeline.Bound(120), Doc: "playback rate of the GIF and MP4"},
			{Name: "scale", Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(64), Doc: "pixel enlargement of the GIF and MP4 (0: to at least 256 px)"},
			{Name: "device", NoKey: true, Type: pipeline.String, Default: "cpu", Enum: []string{"cpu", "cuda", "auto"},
				Doc: "cpu; cuda runs the UNet and the VAE decoder on the GPU (trainer/gpu's SD executor, in precision); auto picks the GPU when one is usable, else the CPU with a warning"},
			{Name: "precision", Type: pipeline.String, Default: string(trainer.PrecisionTF32), Enum: trainer.Precisions,
				Doc: "arithmetic of the GPU passes: fp32, tf32 (TF32 tensor-core products), bf16 (bfloat16 weights and products, float32 accumulation), fp16; the CPU samples in fp32 (and says so)"},
		},
		Tools:  []pipeline.Tool{{Name: "ffmpeg", VersionArgs: []string{"-version"}, Optional: true}},
		Run:    runSampleSD,
		Verify: verifySample,
	}
}

func runSampleSD(ctx context.Context, r *pipeline.StageRun) error {
	var sum trainer.SDSummary
	trainDir, err := readTrainSummary(r, "train_sd", &sum)
	if err != nil {
		return err
	}
	if sum.Family != trainer.FamilySD {
		return fmt.Errorf("sample_sd: %s is not a train_sd summary", filepath.Join(trainDir, trainer.SummaryFile))
	}
	p := r.Params
	o := trainer.SDSampleOptions{
		Model: sum.Model, Tokenizer: sum.Tokenizer, Temporal: filepath.Join(trainDir, trainer.TemporalFile), GroupNorm: sum.GroupNorm,
		Latents: sum.Latents, NegativePrompt: p.String("negative_prompt"), Guidance: p.Float("guidance_scale"), Eta: p.Float("eta"),
		Frames: p.Int("frames"), Steps: p.Int("steps"), Seed: int64(p.Int("seed")), DecodeBatch: p.Int("decode_batch"),
		FPS: p.Float("fps"), Scale: p.Int("scale"), OutDir: r.OutDir, Log: r.Log, Device: trainer.Device(p.String("device")),
		Precision: trainer.Precision(p.String("precision")),
	}
	if p.Has("image") {
		o.Image = p.String("image")
	}
	if p.Has("prompt") {
		o.Prompt, o.PromptSet = p.String("prompt"), true
	}
	res, err := trainer.SampleSD(ctx, o)
	if err != nil {
		return err
	}
	r.Report(fmt.Sprintf("%d frames at %dx%d from %s, %d DDIM steps, guidance %.1f, %.1f s on %s", res.Frames, res.Resolution, res.Resolution,
		res.Source, res.Steps, o.Guidance, res.Seconds, res.Compute))
	return nil
}
