package trainer

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/media"
)

// SDSampleOptions configures SampleSD. Zero values are documented per
// field.
type SDSampleOptions struct {
	// Model is the SD model the video model was trained from; Tokenizer a
	// tokenizer folder when it has none; Temporal the train stage's
	// temporal.safetensors; GroupNorm the norm mode it was trained with.
	Model, Tokenizer, Temporal, GroupNorm string
	// Image is the still to animate (any size: centre-cropped and resized
	// to the model's resolution, then VAE-encoded); when empty, the first
	// frame of the first validation clip of Latents.
	Image, Latents string
	// Prompt and NegativePrompt condition the two halves of guidance;
	// PromptSet false with no Image takes the validation clip's caption.
	Prompt, NegativePrompt string
	PromptSet              bool
	// Guidance is the classifier-free guidance scale (1: the prompt alone,
	// one net pass per step); Eta DDIM's variance (0: deterministic).
	Guidance, Eta float64
	// Frames is the clip length, the still included (0 means 25); Steps
	// the DDIM steps (0 means 50).
	Frames, Steps int
	Seed          int64
	// DecodeBatch is the frames per VAE decoder call (0 means 8).
	DecodeBatch int
	// Device: DeviceCUDA runs the UNet and the VAE decoder on the GPU
	// (trainer/gpu's SD executor, float32), DeviceCPU (or "") on the
	// Gorgonia CPU graph and interpreter; TF32 as in Common.
	Device Device
	TF32   bool
	// Precision of the GPU passes ("": tf32 with TF32, else fp32); the
	// CPU samples in fp32.
	Precision Precision
	// FPS and Scale shape the GIF and MP4 (0: 8 fps, scale to >= 256 px).
	FPS    float64
	Scale  int
	OutDir string
	Log    *slog.Logger
}

// SampleSD turns a still image into a clip of o.Frames frames with the SD
// family's video model: the still VAE-encoded once (its latent's mean,
// times the scaling factor) and given as the masked image of every frame
// with mask 0, as in training; DDIM over all frames jointly with
// classifier-free guidance on the text; the VAE decodes the frames in
// batches. Writes sample.gif, sample.mp4 (with ffmpeg), sample.png (the
// contact sheet) and still.png at the model's resolution.
func SampleSD(ctx context.Context, o SDSampleOptions) (*SampleResult, error) {
	start := time.Now()
	if o.Frames == 0 {
		o.Frames = 25
	}
	if o.Steps == 0 {
		o.Steps = 50
	}
	if o.DecodeBatch == 0 {
		o.DecodeBatch = 8
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Frames < 2 || o.Guidance < 1 || o.Eta < 0 || o.OutDir == "" {
		return nil, fmt.Errorf("sample: frames %d (want >= 2), guidance_scale %g (want >= 1), eta %g (want >= 0), output %q",
			o.Frames, o.Guidance, o.Eta, o.OutDir)
	}
	dev, err := o.Device.resolve(o.Log)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	sm, err := openSD(o.Model, sdLoad{GroupNorm: o.GroupNorm, Tokenizer: o.Tokenizer, Text: true, VAE: true})
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	meta, err := loadSDTemporal(sm, o.Temporal)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	f := sm.VAE.Config.Downscale()
	var cond []float32
	var source string
	var h int
	if o.Image != "" {
		// the training size (the model's sample_size when not recorded)
		res := sm.UNet.Config.SampleSize * f
		if n, err := strconv.Atoi(meta[MetaLatentSize]); err == nil && n > 0 {
			res = n * f
		}
		img, err := media.LoadStill(o.Image, res)
		if err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		mean, _, err := sm.VAE.Encode(img, 1, res, res)
		if err != nil {
			return nil, fmt.Errorf("sample: encode %s: %w", o.Image, err)
		}
		for i := range mean {
			mean[i] *= float32(sm.VAE.Config.ScalingFactor)
		}
		cond, source, h = mean, o.Image, res/f
	} else {
		if o.Latents == "" {
			return nil, fmt.Errorf("sample: no still image and no latents to take a validation frame from")
		}
		ds, err := shards.OpenLatents(o.Latents)
		if err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		c, _, id, err := latentStill(ds)
		if err == nil && !o.PromptSet {
			for _, v := range ds.Index.Videos {
				if v.ID == id {
					o.Prompt = v.Caption
				}
			}
		}
		h = ds.Index.LatentShape[1]
		ds.Close()
		if err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		cond, source = c, "latents:"+id+":1"
	}
	if err := sm.UNet.Net.CheckSize(h, h); err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	emb, err := sm.embed(o.Prompt, o.NegativePrompt)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	tl := len(emb) / 2
	den := &sdDenoise{sm: sm}
	defer den.close()
	var g *sdGPU
	if dev == DeviceCUDA {
		if g, err = openSDGPU(precisionOr(o.Precision, o.TF32), o.Log); err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		defer g.close()
		den.build = g.unet(sm.UNet)
	}
	o.Log.Info("sampling", slog.String("family", FamilySD), slog.Int("frames", o.Frames), slog.Int("steps", o.Steps),
		slog.Float64("guidance_scale", o.Guidance), slog.Float64("eta", o.Eta), slog.String("source", source),
		slog.String("prompt", o.Prompt))
	loopStart := time.Now()
	x, err := den.run(ctx, sdSampling{Frames: o.Frames, Steps: o.Steps, Guidance: o.Guidance, Eta: o.Eta, Seed: uint64(o.Seed),
		Cond: cond, Text: emb[tl:], Uncond: emb[:tl], H: h, W: h,
		Progress: func(done, total int) {
			if done%10 == 0 || done == total {
				o.Log.Info("sample", slog.Int("ddim_step", done), slog.Int("steps", total))
			}
		}})
	if err != nil {
		return nil, err
	}
	den.close()
	loop := time.Since(loopStart).Seconds()
	o.Log.Info("denoised", slog.Int("frames", o.Frames), slog.Int("steps", o.Steps), slog.Float64("seconds", loop),
		slog.Float64("s_per_step", loop/float64(o.Steps)))
	decodeStart := time.Now()
	decode := func(lat []float32, k int) ([]float32, error) { return sm.VAE.Decode(lat, k, h, h) }
	if g != nil {
		d, closeDec, err := g.decoder(sm.VAE, h, h)
		if err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		defer closeDec()
		decode = d
	}
	img, err := decodeLatentsWith(sm.VAE, decode, x, o.Frames, h, h, o.DecodeBatch)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	o.Log.Info("decoded", slog.Int("frames", o.Frames), slog.Int("batch", o.DecodeBatch), slog.Float64("seconds", time.Since(decodeStart).Seconds()))
	res := h * f
	mo := SampleOptions{Frames: o.Frames, FPS: o.FPS, Scale: o.Scale, OutDir: o.OutDir, Log: o.Log}
	if err := writeMedia(ctx, mo, img, img[:3*res*res], res); err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	if g != nil {
		logGPUMemory(o.Log, g.dev, "sample")
	}
	compute := "cpu fp32"
	if g != nil {
		compute = "cuda " + string(precisionOr(o.Precision, o.TF32))
	}
	return &SampleResult{Frames: o.Frames, Resolution: res, Steps: o.Steps, Source: source, Seconds: time.Since(start).Seconds(), Compute: compute}, nil
}

// loadSDTemporal reads the trained temporal layers of a TrainSD checkpoint
// into sm's video UNet; the checkpoint must have been trained on these
// model files and this architecture.
func loadSDTemporal(sm *sdModel, path string) (map[string]string, error) {
	tf, err := checkpoint.Read(path)
	if err != nil {
		return nil, err
	}
	if got := tf.Metadata[MetaBackboneHash]; got != sm.Hash {
		return nil, fmt.Errorf("%s was trained on model files %s, but %s is %s: use the model it was trained from",
			path, checkpoint.Short(got), sm.Path, checkpoint.Short(sm.Hash))
	}
	if got := tf.Metadata[MetaConfigHash]; got != sm.configHash() {
		return nil, fmt.Errorf("%s has video UNet config %s, this one's is %s (group_norm %s)", path,
			checkpoint.Short(got), checkpoint.Short(sm.configHash()), sm.UNet.Options.GroupNorm)
	}
	if err := loadParams(sm.UNet.Params.TemporalParams(), tf, path); err != nil {
		return nil, err
	}
	return tf.Metadata, nil
}
