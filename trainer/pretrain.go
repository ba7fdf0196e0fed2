package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// Metadata keys specific to this package's checkpoints.
const (
	MetaNoiseSchedule = "noise_schedule"
	MetaResolution    = "resolution"
	MetaFramesLength  = "frames_length"
)

// Pretrain trains the spatial backbone as an image denoiser: each example
// is a frame of a training video, noised, with a clean frame CondGap frames
// earlier in the same video as the condition (mask 0). It writes
// backbone.safetensors (every backbone parameter; metadata: model config and
// its hash, step, noise schedule), its optimizer/RNG state beside it,
// metrics.jsonl and loss.png.
func Pretrain(ctx context.Context, o PretrainOptions) (*Result, error) {
	c := &o.Common
	if err := c.defaults(); err != nil {
		return nil, err
	}
	if o.Model == "" {
		o.Model = "tiny"
	}
	if o.CondGap <= 0 {
		o.CondGap = 4
	}
	cfg, err := model.Preset(o.Model)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckSize(c.Resolution, c.Resolution); err != nil {
		return nil, err
	}
	params, err := model.NewParams(cfg, uint64(c.Seed))
	if err != nil {
		return nil, err
	}
	cj, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{
		MetaModelConfig: string(cj), MetaConfigHash: cfg.Hash(), MetaNoiseSchedule: NoiseSchedule,
		MetaPrediction: Prediction,
		MetaSeed:       strconv.FormatInt(c.Seed, 10), MetaResolution: strconv.Itoa(c.Resolution),
	}
	rs, err := c.runSettings("pretrain", cfg.Hash())
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	rs.CondGap = o.CondGap
	if err := rs.addMeta(meta); err != nil {
		return nil, err
	}
	s := &session{c: c, name: "pretrain", params: params, stride: o.CondGap,
		shape: trainShape{Video: false, B: c.Batch, T: 2, R: c.Resolution}}
	defer s.close()
	if err := s.setup(BackboneFile, PretrainStateFile, "backbone", meta, []string{MetaConfigHash}); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	if err := s.openData(ctx); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	total, _ := params.Count()
	c.Log.Info("pretraining the backbone", slog.String("model", o.Model), slog.Int("backbone_tensors", len(s.be.trainable())),
		slog.Int("values", total), slog.Int("steps", s.steps), slog.Int("from", s.start))
	return s.run(ctx)
}
