package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer"
)

// SampleKind turns a still image into a timelapse with the video model of
// the train stage it needs (trainer.Sample).
func SampleKind() pipeline.Kind {
	return pipeline.Kind{
		Name:    "sample",
		Version: "2",
		Doc: "Generates a timelapse from a still image (any size; centre-cropped and resized to the training " +
			"resolution) or, without one, from the first frame of a validation clip, with the train stage's " +
			"video model and DDIM. Writes sample.gif, sample.mp4 (H.264 via ffmpeg, when installed), sample.png (contact " +
			"sheet), still.png and sample.json (the quality measure: high frequency and frame change of the generated frames against the validation videos'). Needs one train stage.",
		Params: []pipeline.ParamSpec{
			{Name: "image", Type: pipeline.Path, Doc: "still image to animate (JPEG, PNG, ...); default: the first frame of a validation clip"},
			{Name: "frames", Type: pipeline.Int, Default: 25, Min: pipeline.Bound(2), Max: pipeline.Bound(2000), Doc: "frames to generate, the still included (any length: 120 works)"},
			{Name: "steps", Type: pipeline.Int, Default: 20, Min: pipeline.Bound(1), Max: pipeline.Bound(1000), Doc: "DDIM denoising steps"},
			{Name: "seed", Type: pipeline.Int, Default: 0, Doc: "seed of the initial noise"},
			{Name: "resolution", Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(1024), Doc: "frame size (0: the training resolution)"},
			{Name: "fps", Type: pipeline.Float, Default: 8.0, Min: pipeline.Bound(0.1), Max: pipeline.Bound(120), Doc: "playback rate of the GIF and MP4"},
			{Name: "device", NoKey: true, Type: pipeline.String, Default: "cpu", Enum: []string{"cpu", "cuda", "auto"},
				Doc: "cpu; cuda runs the denoiser on the GPU; auto picks the GPU when one is usable, else the CPU with a warning"},
			{Name: "tf32", NoKey: true, Type: pipeline.Bool, Default: false, Doc: "on the GPU, let matrix products use TF32 tensor cores"},
			{Name: "scale", Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(64), Doc: "pixel enlargement of the GIF and MP4 (0: to at least 256 px)"},
		},
		// Without ffmpeg (a GPU box) the MP4 is skipped with a warning.
		Tools:  []pipeline.Tool{{Name: "ffmpeg", VersionArgs: []string{"-version"}, Optional: true}},
		Run:    runSample,
		Verify: verifySample,
	}
}

// readTrainSummary decodes the train.json of the one needed stage of
// trainKind into sum and returns that stage's output folder.
func readTrainSummary(r *pipeline.StageRun, trainKind string, sum any) (string, error) {
	dir, err := needOfKind(r, trainKind)
	if err != nil {
		return "", err
	}
	if dir == "" {
		return "", fmt.Errorf("%s: needs a %s stage (needs: %v)", r.Kind, trainKind, r.Needs)
	}
	path := filepath.Join(dir, trainer.SummaryFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %s stage output: %w", r.Kind, trainKind, err)
	}
	if err := json.Unmarshal(b, sum); err != nil {
		return "", fmt.Errorf("%s: %s: %w", r.Kind, path, err)
	}
	return dir, nil
}

func runSample(ctx context.Context, r *pipeline.StageRun) error {
	var sum trainer.Summary
	trainDir, err := readTrainSummary(r, "train", &sum)
	if err != nil {
		return err
	}
	p := r.Params
	o := trainer.SampleOptions{
		Temporal: filepath.Join(trainDir, trainer.TemporalFile), Backbone: sum.Backbone, Shards: sum.Shards,
		Resolution: p.Int("resolution"), Frames: p.Int("frames"), Steps: p.Int("steps"), Seed: int64(p.Int("seed")),
		FPS: p.Float("fps"), Scale: p.Int("scale"), OutDir: r.OutDir, Log: r.Log,
		Device: trainer.Device(p.String("device")), TF32: p.Bool("tf32"),
	}
	if p.Has("image") {
		o.Image = p.String("image")
	}
	res, err := trainer.Sample(ctx, o)
	if err != nil {
		return err
	}
	r.Report(fmt.Sprintf("%d frames at %dx%d from %s, %d DDIM steps, %.1f s", res.Frames, res.Resolution, res.Resolution,
		res.Source, res.Steps, res.Seconds))
	if q := res.Quality; q != nil {
		r.Report(fmt.Sprintf("quality (sample.json): high frequency %.1f vs %.1f in the validation frames (%.2fx), "+
			"frame change %.1f vs %.1f (%.2fx)", q.GeneratedHF, q.RealHF, q.HFRatio, q.GeneratedChange, q.RealChange, q.ChangeRatio))
	}
	return nil
}
