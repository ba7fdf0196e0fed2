package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// SD training outputs besides the pixel trainer's files.
const (
	// VideoModelDir is the trained video UNet in the recipe's folder layout
	// (VideoModelDir/unet/config.json + diffusion_pytorch_model.safetensors).
	VideoModelDir = "video-model"
	// SDPredictionEpsilon is what the SD family predicts.
	SDPredictionEpsilon = "epsilon"
)

// SDTrainOptions configures TrainSD.
type SDTrainOptions struct {
	// Common: Shards is the latents stage's folder; Resolution is ignored
	// (the latents fix the size).
	Common
	// Model is the SD model (a diffusers folder or a single file) whose
	// inpainting UNet is the backbone; Tokenizer a tokenizer folder when
	// the model has none (a single file).
	Model, Tokenizer string
	// FramesLength is the latents per clip (0 means 25); the first is the
	// condition, the loss covers the others.
	FramesLength int
	// CaptionDropout is the probability of training a clip on the empty
	// prompt's embedding instead of its caption's (guidance needs it).
	CaptionDropout float64
	// GroupNorm is the pseudo-3D UNet's norm mode (per_frame by default).
	GroupNorm string
	// SampleEvery > 0 writes previews/step-NNNNNN.gif every that many steps.
	SampleEvery int
	// ExportDtype is the precision of the exported video model (F16 when
	// "").
	ExportDtype weights.Dtype
	// Precision of the GPU step ("": tf32 with Common.TF32, else fp32);
	// the CPU trains in fp32. Checkpointing recomputes each block's
	// forward in the backward pass on the GPU (less memory, more time).
	Precision     Precision
	Checkpointing bool
}

// SDSummary is the train.json of TrainSD. A loss that is not finite is
// written as null.
type SDSummary struct {
	Family         string  `json:"family"`
	Model          string  `json:"model"`
	ModelSHA256    string  `json:"model_sha256"`
	Tokenizer      string  `json:"tokenizer,omitempty"`
	Latents        string  `json:"latents"`
	GroupNorm      string  `json:"group_norm"`
	CaptionDropout float64 `json:"caption_dropout"`
	NoiseSchedule  string  `json:"noise_schedule"`
	Prediction     string  `json:"prediction"`
	LatentSize     int     `json:"latent_size"`
	SummaryResult
	// Device, Precision and Checkpointing are what the step ran with.
	Device        Device    `json:"device"`
	Precision     Precision `json:"precision"`
	Checkpointing bool      `json:"checkpointing"`
	// Export is the video model folder (relative to the output folder).
	Export string `json:"export"`
}

// TrainSD trains the temporal layers of the SD family's video model: the
// model's inpainting UNet inflated to the recipe's pseudo-3D layout, the
// backbone frozen, on clips of FramesLength latents of the latents stage,
// with SD's objective (epsilon on the model's scheduler). Conditioning as
// the recipe's: mask 0 on every frame, the clip's first-frame latent as
// the masked image of every frame, loss on frames 2..T, the video's text
// embedding (the empty prompt's with probability CaptionDropout). Each
// step's latents are draws from N(mean, exp(logvar)) times the VAE's
// scaling factor. Checkpoints, resume, validation against the backbone
// (step 0) and metrics are the pixel trainer's; at the end the video
// model is exported in the recipe's folder layout (VideoModelDir) beside
// temporal.safetensors.
func TrainSD(ctx context.Context, o SDTrainOptions) (*Result, error) {
	c := &o.Common
	if err := framesLengthDefault(&o.FramesLength); err != nil {
		return nil, err
	}
	if o.CaptionDropout < 0 || o.CaptionDropout > 1 {
		return nil, fmt.Errorf("train: caption_dropout %g: want 0..1", o.CaptionDropout)
	}
	if o.ExportDtype == "" {
		o.ExportDtype = weights.F16
	}
	if c.Shards == "" {
		return nil, fmt.Errorf("train: no latents folder")
	}
	ds, err := shards.OpenLatents(c.Shards)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	ix := ds.Index
	lc, lh, lw := ix.LatentShape[0], ix.LatentShape[1], ix.LatentShape[2]
	if lh != lw {
		ds.Close()
		return nil, fmt.Errorf("train: latents %s are %dx%d; the trainer takes square frames", c.Shards, lh, lw)
	}
	c.Resolution = lh * 8
	if err := c.defaults(); err != nil {
		ds.Close()
		return nil, err
	}
	prec, sdo, err := sdStepOptions(c, o.Precision, o.Checkpointing)
	if err != nil {
		ds.Close()
		return nil, fmt.Errorf("train: %w", err)
	}
	sm, err := openSD(o.Model, sdLoad{GroupNorm: o.GroupNorm, Tokenizer: o.Tokenizer, Text: true, VAE: o.SampleEvery > 0})
	if err != nil {
		ds.Close()
		return nil, fmt.Errorf("train: %w", err)
	}
	u := sm.UNet
	if err := checkLatentsFit(sm, ix, c.Shards); err != nil {
		ds.Close()
		return nil, fmt.Errorf("train: %w", err)
	}
	if sm.VAE != nil {
		c.Resolution = lh * sm.VAE.Config.Downscale()
	}
	if sm.Scheduler.PredictionType != diffusion.PredictEpsilon {
		ds.Close()
		return nil, fmt.Errorf("train: %s's scheduler predicts %s; the SD family trains epsilon prediction (SD-1.x's objective)", o.Model, sm.Scheduler.PredictionType)
	}
	if sm.Inflated {
		u.Params.InitTemporal(uint64(c.Seed))
	}
	empty, err := sm.embed("")
	if err != nil {
		ds.Close()
		return nil, fmt.Errorf("train: empty prompt: %w", err)
	}
	schedJSON, _ := json.Marshal(sm.Scheduler)
	objective := sm.Sched.Kind + " schedule, " + SDPredictionEpsilon + "-prediction"
	meta := map[string]string{
		MetaModelConfig: FamilySD, MetaConfigHash: sm.configHash(), MetaBackboneHash: sm.Hash,
		MetaNoiseSchedule: sm.Sched.Kind, MetaPrediction: SDPredictionEpsilon, MetaSeed: strconv.FormatInt(c.Seed, 10),
		MetaResolution: strconv.Itoa(c.Resolution), MetaFramesLength: strconv.Itoa(o.FramesLength),
		MetaGroupNorm: u.Options.GroupNorm, MetaCaptionDropout: strconv.FormatFloat(o.CaptionDropout, 'g', -1, 64),
		MetaScheduler: string(schedJSON), MetaLatentSize: strconv.Itoa(lh),
	}
	rs, err := c.runSettings("train_sd", sm.configHash())
	if err != nil {
		ds.Close()
		return nil, fmt.Errorf("train: %w", err)
	}
	rs.NoiseSchedule, rs.Prediction = sm.Sched.Kind, SDPredictionEpsilon
	rs.BackboneSHA256, rs.FramesLength = sm.Hash, o.FramesLength
	if err := rs.addMeta(meta); err != nil {
		ds.Close()
		return nil, err
	}
	lay := sdLayout{B: c.Batch, T: o.FramesLength, C: lc, H: lh, W: lw, Tokens: ix.TextShape[0], D: ix.TextShape[1]}
	s := &session{c: c, name: "train", params: u.Params, net: u.Net, sched: sm.Sched, objective: objective, stride: 1,
		shape: trainShape{Video: true, B: c.Batch, T: o.FramesLength, R: lh}, sdOpts: sdo}
	var ld *shards.LatentLoader
	var prev *sdPreviewer
	defer func() {
		s.close()
		if prev != nil {
			prev.close()
		}
		if ld != nil {
			ld.Close()
		}
		ds.Close()
	}()
	mustMatch := []string{MetaBackboneHash, MetaConfigHash, MetaGroupNorm, MetaCaptionDropout, MetaScheduler}
	if err := s.setup(TemporalFile, TrainStateFile, "temporal-"+FamilySD, meta, mustMatch); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if ld, err = shards.NewLatentLoader(ds, shards.LatentLoaderOptions{
		Split: shards.SplitTrain, FramesLength: lay.T, Batch: lay.B, Seed: c.Seed, StartStep: s.start,
		Part: s.part(), Parts: s.parts(), // lay.B is the global batch
	}); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if c.Epochs > 0 {
		s.steps = c.Epochs * ld.BatchesPerEpoch()
	}
	s.ckpt.meta[MetaTotalSteps] = strconv.Itoa(s.steps)
	if err := s.checkSteps(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	rankLay := s.rankLayout(lay)
	s.feed = newFeederFunc(sdFeed(ld, sm.Sched, empty, o.CaptionDropout), s.rng, func() *example { return s.newSDTrainExample(rankLay) })
	if c.root() { // rank 0 validates, previews and exports
		if s.val, err = newSDValidator(ctx, s, ds, lay, empty); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	if o.SampleEvery > 0 && c.root() {
		if prev, err = newSDPreviewer(sm, ds, lay, c, s.opt.syncHost); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		if s.be.sd != nil {
			if err := prev.onGPU(s.be.sd, rankLay.B); err != nil {
				return nil, fmt.Errorf("train: preview: %w", err)
			}
		}
		s.extraHooks = append(s.extraHooks, prev.hook(o.SampleEvery))
	}
	if err := s.baseline(ctx); err != nil {
		return nil, fmt.Errorf("train: baseline validation: %w", err)
	}
	_, temporal := u.Params.Count()
	c.Log.Info("training the temporal layers", slog.String("family", FamilySD), slog.Int("temporal_values", temporal),
		slog.Int("trainable_tensors", len(s.be.trainable())), slog.Int("frames", o.FramesLength),
		slog.Int("latent_size", lh), slog.String("objective", objective), slog.Bool("scheduler_from_model", sm.SchedulerFound),
		slog.Int("steps", s.steps), slog.Int("from", s.start))
	res, err := s.run(ctx)
	if s.be.sd != nil {
		logGPUMemory(c.Log, s.be.sd.dev, "train")
	}
	if err != nil {
		return res, fmt.Errorf("train: %w", err)
	}
	if err := s.opt.syncHost(); err != nil {
		return res, fmt.Errorf("train: %w", err)
	}
	if !c.root() {
		return res, nil
	}
	if err := exportVideoModel(u, c.OutDir, o.ExportDtype); err != nil {
		return res, fmt.Errorf("train: %w", err)
	}
	sum := SDSummary{
		Family: FamilySD, Model: o.Model, ModelSHA256: sm.Hash, Tokenizer: o.Tokenizer, Latents: c.Shards,
		GroupNorm: u.Options.GroupNorm, CaptionDropout: o.CaptionDropout, NoiseSchedule: sm.Sched.Kind,
		Prediction: SDPredictionEpsilon, LatentSize: lh, SummaryResult: newSummaryResult(res, c.Resolution, o.FramesLength),
		Export: VideoModelDir, Device: c.Device, Precision: prec, Checkpointing: sdCheckpointingOn(sdo),
	}
	if err := writeSummary(c.OutDir, sum); err != nil {
		return res, fmt.Errorf("train: %w", err)
	}
	return res, nil
}

// checkLatentsFit checks that the latents were made for this UNet: its
// latent channels, the text embedding's width and length, a size the UNet
// can downsample.
func checkLatentsFit(sm *sdModel, ix *shards.LatentIndex, dir string) error {
	u := sm.UNet
	if ix.LatentShape[0] != u.Config.OutChannels {
		return fmt.Errorf("latents %s have %d channels, the UNet of %s predicts %d", dir, ix.LatentShape[0], sm.Path, u.Config.OutChannels)
	}
	if ix.TextShape[1] != u.Config.CrossAttentionDim || ix.TextShape[0] != model.ContextTokens {
		return fmt.Errorf("latents %s hold text embeddings of %v, the UNet of %s takes (%d, %d): encode them with this model's text encoder",
			dir, ix.TextShape, sm.Path, model.ContextTokens, u.Config.CrossAttentionDim)
	}
	if err := u.Net.CheckSize(ix.LatentShape[1], ix.LatentShape[2]); err != nil {
		return fmt.Errorf("latents %s: %w", dir, err)
	}
	return nil
}

// newSDValidator fixes the validation set: the first Batches batches of
// the validation split's windows in a seeded order, each latent the
// Gaussian's mean (no sampling noise), timesteps and noise drawn once from
// the validation stream, every clip on its own caption.
func newSDValidator(ctx context.Context, s *session, ds *shards.LatentDataset, l sdLayout, empty []float32) (*validator, error) {
	c := s.c
	wins, err := ds.Windows(shards.SplitVal, l.T, 1)
	if err != nil {
		return nil, err
	}
	if len(wins) == 0 {
		c.Log.Warn("no validation windows; validation is skipped", slog.String("split", shards.SplitVal),
			slog.Int("videos", len(ds.Videos(shards.SplitVal))), slog.Int("frames_length", l.T))
		return nil, nil
	}
	ld, err := shards.NewLatentLoader(ds, shards.LatentLoaderOptions{
		Split: shards.SplitVal, FramesLength: l.T, Batch: l.B, Seed: c.Seed, Mean: true,
	})
	if err != nil {
		return nil, fmt.Errorf("validation: %w", err)
	}
	defer ld.Close()
	rnd := rand.New(rand.NewPCG(uint64(c.Seed), streamVal))
	v := &validator{}
	for range c.ValBatches {
		b, err := ld.Next(ctx)
		if err != nil {
			return nil, fmt.Errorf("validation batch: %w", err)
		}
		ex := newSDExample(l)
		if err := fillSD(ex, b, s.sched, rnd, empty, 0); err != nil {
			return nil, fmt.Errorf("validation batch: %w", err)
		}
		ex.noise, ex.noisy = nil, nil
		v.examples = append(v.examples, ex)
	}
	v.shape = nn.FrameMSEShape{B: l.B, T: l.T, E: l.frameLen(), Skip: s.be.skip()}
	// the predictor runs this rank's batch (the GPU executor's training
	// shape), the global batch in slices
	p, err := s.be.predictor(s.params, true, l.B/s.parts(), l.T, l.H, l.W)
	if err != nil {
		return nil, fmt.Errorf("validation graph: %w", err)
	}
	v.graph = s.slicedFor(p)
	return v, nil
}

// exportVideoModel writes the trained video UNet to dir/VideoModelDir in
// the recipe's layout, replacing the export of an earlier run of this
// stage (written here, so ours to replace) only once the new one is
// complete.
func exportVideoModel(u *model.UNet, dir string, dtype weights.Dtype) error {
	final := filepath.Join(dir, VideoModelDir)
	tmp := final + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := u.WriteFolder(tmp, dtype); err != nil {
		return err
	}
	old := final + ".old"
	if err := os.RemoveAll(old); err != nil {
		return err
	}
	if _, err := os.Stat(final); err == nil {
		if err := os.Rename(final, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return os.RemoveAll(old)
}
