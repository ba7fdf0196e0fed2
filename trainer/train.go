package trainer

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/metrics"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// SummaryFile is written by Train: what it trained on and how it went.
const SummaryFile = "train.json"

// Summary is the content of train.json. A loss that is not finite is
// written as null.
type Summary struct {
	Backbone       string `json:"backbone"`
	BackboneSHA256 string `json:"backbone_sha256"`
	Shards         string `json:"shards"`
	SummaryResult
}

// SummaryResult is the part of train.json that Summary and SDSummary
// share: the run's sizes and how it went. Both embed it, so its keys stand
// in train.json where the embedding struct puts it.
type SummaryResult struct {
	Resolution   int           `json:"resolution"`
	FramesLength int           `json:"frames_length"`
	Steps        int           `json:"steps"`
	Loss         metrics.Float `json:"loss"`
	ValLoss      metrics.Float `json:"val_loss"`
	// BaselineValLoss is the validation loss of the video model at
	// initialisation: the backbone frame by frame (for SD with per_frame
	// norms).
	BaselineValLoss metrics.Float `json:"baseline_val_loss"`
	// ValRatio is ValLoss / BaselineValLoss: below 1 when the temporal
	// layers help.
	ValRatio       metrics.Float `json:"val_ratio"`
	SecondsPerStep metrics.Float `json:"seconds_per_step"`
}

// newSummaryResult is res as train.json records it; ValRatio stays 0
// without a baseline.
func newSummaryResult(res *Result, resolution, framesLength int) SummaryResult {
	r := SummaryResult{
		Resolution: resolution, FramesLength: framesLength, Steps: res.Steps, Loss: metrics.Float(res.Loss),
		ValLoss: metrics.Float(res.ValLoss), BaselineValLoss: metrics.Float(res.BaselineValLoss),
		SecondsPerStep: metrics.Float(res.SecondsPerStep),
	}
	if res.BaselineValLoss > 0 {
		r.ValRatio = metrics.Float(res.ValLoss / res.BaselineValLoss)
	}
	return r
}

// writeSummary writes sum (a Summary or an SDSummary) to dir/train.json.
func writeSummary(dir string, sum any) error {
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, SummaryFile), append(b, '\n'))
}

// LoadBackbone reads a backbone file written by Pretrain and returns the
// video model's parameters: the backbone's values, and temporal layers
// initialised (identity convs, zero attention projections) with seed.
func LoadBackbone(path string, seed uint64) (*model.Params, *checkpoint.File, error) {
	f, err := checkpoint.Read(path)
	if err != nil {
		return nil, nil, err
	}
	var cfg model.Config
	if err := json.Unmarshal([]byte(f.Metadata[MetaModelConfig]), &cfg); err != nil {
		return nil, nil, fmt.Errorf("backbone %s: no valid %s metadata: %w", path, MetaModelConfig, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("backbone %s: %w", path, err)
	}
	p, err := model.NewParams(cfg, seed)
	if err != nil {
		return nil, nil, err
	}
	if err := loadParams(p.Backbone(), f, "backbone "+path); err != nil {
		return nil, nil, err
	}
	return p, f, nil
}

// Train trains the temporal layers of the video model on clips of
// FramesLength frames, the backbone (read from o.Backbone, never written)
// frozen. It writes temporal.safetensors (only the temporal parameters;
// metadata: step, config hash, backbone hash), its optimizer/RNG state
// beside it, metrics.jsonl, loss.png and train.json. Before the first step
// of a fresh run it measures the validation loss of the untrained video
// model (the backbone frame by frame), the baseline the trained loss is
// compared with.
func Train(ctx context.Context, o TrainOptions) (*Result, error) {
	c := &o.Common
	if err := c.defaults(); err != nil {
		return nil, err
	}
	if err := framesLengthDefault(&o.FramesLength); err != nil {
		return nil, err
	}
	params, bb, err := LoadBackbone(o.Backbone, uint64(c.Seed))
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if got := bb.Metadata[MetaPrediction]; got != Prediction || bb.Metadata[MetaNoiseSchedule] != NoiseSchedule {
		return nil, fmt.Errorf("train: backbone %s was trained with prediction %q and noise schedule %q; this trainer uses %q and %q",
			o.Backbone, got, bb.Metadata[MetaNoiseSchedule], Prediction, NoiseSchedule)
	}
	bbHash, err := checkpoint.FileHash(o.Backbone)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	cfg := params.Config
	if err := cfg.CheckSize(c.Resolution, c.Resolution); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	meta := map[string]string{
		MetaModelConfig: bb.Metadata[MetaModelConfig], MetaConfigHash: cfg.Hash(), MetaBackboneHash: bbHash,
		MetaNoiseSchedule: NoiseSchedule, MetaPrediction: Prediction, MetaSeed: strconv.FormatInt(c.Seed, 10),
		MetaResolution: strconv.Itoa(c.Resolution), MetaFramesLength: strconv.Itoa(o.FramesLength),
	}
	rs, err := c.runSettings("train", cfg.Hash())
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	rs.BackboneSHA256, rs.FramesLength = bbHash, o.FramesLength
	sched, err := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	if err != nil {
		return nil, err
	}
	sampler, err := newTimestepSampler(o.TimestepSampling, o.MinSNRGamma, o.TimestepUniform, sched)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if sampler != nil {
		rs.TimestepSampling, rs.MinSNRGamma = o.TimestepSampling, cmp.Or(o.MinSNRGamma, DefaultMinSNRGamma)
		rs.TimestepUniform = o.TimestepUniform
	}
	if err := rs.addMeta(meta); err != nil {
		return nil, err
	}
	s := &session{c: c, name: "train", params: params, stride: 1, sched: sched, sampler: sampler,
		shape: trainShape{Video: true, B: c.Batch, T: o.FramesLength, R: c.Resolution}}
	defer s.close()
	if err := s.setup(TemporalFile, TrainStateFile, "temporal", meta, []string{MetaBackboneHash, MetaConfigHash}); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if err := s.openData(ctx); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if o.SampleEvery > 0 {
		if err := s.addPreview(o.SampleEvery); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	if err := s.baseline(ctx); err != nil {
		return nil, fmt.Errorf("train: baseline validation: %w", err)
	}
	_, temporal := params.Count()
	c.Log.Info("training the temporal layers", slog.Int("temporal_values", temporal),
		slog.Int("trainable_tensors", len(s.be.trainable())), slog.Int("frames", o.FramesLength),
		slog.Int("steps", s.steps), slog.Int("from", s.start))
	res, err := s.run(ctx)
	if err != nil {
		return res, fmt.Errorf("train: %w", err)
	}
	if !c.root() {
		return res, nil
	}
	sum := Summary{Backbone: o.Backbone, BackboneSHA256: bbHash, Shards: c.Shards,
		SummaryResult: newSummaryResult(res, c.Resolution, o.FramesLength)}
	if err := writeSummary(c.OutDir, sum); err != nil {
		return res, fmt.Errorf("train: %w", err)
	}
	return res, nil
}

// baseline records the validation loss at step 0 (temporal layers at
// initialisation), or recovers it from the metrics of a resumed run.
func (s *session) baseline(ctx context.Context) error {
	if s.val == nil {
		return nil
	}
	for _, r := range s.mlog.Records {
		if r.Step == 0 && r.ValLoss != nil {
			s.res.BaselineValLoss = *r.ValLoss
			return nil
		}
	}
	var v float64
	var err error
	if s.start > 0 {
		// metrics.jsonl lost its step-0 record: re-measure with the temporal
		// layers at initialisation, then restore the trained values.
		saved := s.params.Clone()
		s.params.InitTemporal(uint64(s.c.Seed) + 1)
		if err = s.be.weightsChanged(); err == nil {
			v, err = s.val.loss(ctx)
		}
		for _, q := range s.params.TemporalParams() {
			copy(q.Data, saved.Get(q.Name).Data)
		}
		if uerr := s.be.weightsChanged(); err == nil {
			err = uerr
		}
	} else {
		v, err = s.val.loss(ctx)
	}
	if err != nil {
		return err
	}
	s.mlog.SetValLoss(0, v)
	s.res.BaselineValLoss = v
	s.c.Log.Info("train baseline (backbone frame by frame)", slog.Float64("val_loss", v))
	return nil
}
