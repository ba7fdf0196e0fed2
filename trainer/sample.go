package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/media"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// Sample output file names.
const (
	SampleGIF   = "sample.gif"
	SampleMP4   = "sample.mp4"
	SampleSheet = "sample.png"
	SampleStill = "still.png"
	// SampleReport is the JSON of SampleResult, quality measure included.
	SampleReport = "sample.json"
)

// SampleResult tells what Sample made.
type SampleResult struct {
	Frames     int `json:"frames"`
	Resolution int `json:"resolution"`
	Steps      int `json:"steps"`
	// Source is the still image path or "shards:<video>:1".
	Source  string  `json:"source"`
	Seconds float64 `json:"seconds"`
	// Quality compares the generated frames with the validation videos of
	// the shards (nil without shards).
	Quality *Quality `json:"quality,omitempty"`
	// Compute is where and in what precision the nets ran ("cuda tf32",
	// "cpu fp32"; the SD family).
	Compute string `json:"compute,omitempty"`
}

// LoadVideoModel reads a temporal checkpoint and the backbone it was
// trained on and returns the video model's parameters and the temporal
// file's metadata. A backbone whose hash differs from the one recorded in
// the temporal file is refused, naming both hashes.
func LoadVideoModel(temporalPath, backbonePath string) (*model.Params, map[string]string, error) {
	tf, err := checkpoint.Read(temporalPath)
	if err != nil {
		return nil, nil, err
	}
	want := tf.Metadata[MetaBackboneHash]
	got, err := checkpoint.FileHash(backbonePath)
	if err != nil {
		return nil, nil, err
	}
	if want != got {
		return nil, nil, fmt.Errorf("%s was trained on backbone %s, but %s is backbone %s: use the backbone it was trained with",
			temporalPath, checkpoint.Short(want), backbonePath, checkpoint.Short(got))
	}
	p, _, err := LoadBackbone(backbonePath, 0)
	if err != nil {
		return nil, nil, err
	}
	if h := p.Config.Hash(); tf.Metadata[MetaConfigHash] != h {
		return nil, nil, fmt.Errorf("%s has model config %s, the backbone's is %s",
			temporalPath, checkpoint.Short(tf.Metadata[MetaConfigHash]), checkpoint.Short(h))
	}
	if err := loadParams(p.TemporalParams(), tf, temporalPath); err != nil {
		return nil, nil, err
	}
	return p, tf.Metadata, nil
}

// Sample turns a still image into a timelapse of o.Frames frames with the
// trained video model (DDIM, o.Steps steps) and writes sample.gif,
// sample.mp4 (ffmpeg), sample.png (contact sheet) and still.png (the
// conditioning frame) into o.OutDir, and sample.json: the result with, when
// o.Shards is set, the quality measure against its validation videos
// (MeasureQuality).
func Sample(ctx context.Context, o SampleOptions) (*SampleResult, error) {
	start := time.Now()
	if o.Frames == 0 {
		o.Frames = 25
	}
	if o.Steps == 0 {
		o.Steps = 20
	}
	if o.Frames < 2 {
		return nil, fmt.Errorf("sample: frames %d: want at least 2", o.Frames)
	}
	if o.OutDir == "" {
		return nil, fmt.Errorf("sample: no output folder")
	}
	p, meta, err := LoadVideoModel(o.Temporal, o.Backbone)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	res := o.Resolution
	if res == 0 {
		if res, err = strconv.Atoi(meta[MetaResolution]); err != nil {
			return nil, fmt.Errorf("sample: %s records no resolution; set one", o.Temporal)
		}
	}
	if err := p.Config.CheckSize(res, res); err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	cond, source, err := stillFrame(o, res)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	schedKind := meta[MetaNoiseSchedule]
	if schedKind == "" {
		schedKind = NoiseSchedule
	}
	sched, err := diffusion.NewSchedule(schedKind, NoiseScheduleSteps)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	fg, err := samplePredictor(p, o, res)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	defer fg.Close()
	log := o.Log
	layout := diffusion.Layout{B: 1, T: o.Frames, C: 3, H: res, W: res}
	eps := fg.Predict
	switch meta[MetaPrediction] {
	case "v":
		eps = epsFromV(fg.Predict, sched, 3, res*res)
	case "eps", "":
	default:
		return nil, fmt.Errorf("sample: %s: unknown prediction %q", o.Temporal, meta[MetaPrediction])
	}
	x, err := diffusion.SampleDDIM(ctx, sched, eps, cond, layout, diffusion.DDIMOptions{
		Steps: o.Steps, Seed: uint64(o.Seed),
		Progress: func(done, total int) {
			if log != nil && (done%5 == 0 || done == total) {
				log.Info("sample", "ddim_step", done, "of", total)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	if err := writeMedia(ctx, o, x, cond, res); err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	r := &SampleResult{Frames: o.Frames, Resolution: res, Steps: o.Steps, Source: source}
	if o.Shards != "" {
		if r.Quality, err = MeasureQuality(x, o.Frames, res, o.Shards); err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		if log != nil {
			q := r.Quality
			log.Info("sample quality", slog.Float64("hf", q.GeneratedHF), slog.Float64("real_hf", q.RealHF),
				slog.Float64("hf_ratio", q.HFRatio), slog.Float64("change", q.GeneratedChange),
				slog.Float64("real_change", q.RealChange), slog.Float64("change_ratio", q.ChangeRatio))
		}
	}
	r.Seconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.OutDir, SampleReport), append(b, '\n')); err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	return r, nil
}

// stillFrame returns the conditioning frame (3, res, res): the still image,
// or the first frame of the first validation video (the first training
// video when there is no validation split).
func stillFrame(o SampleOptions, res int) ([]float32, string, error) {
	if o.Image != "" {
		v, err := media.LoadStill(o.Image, res)
		return v, o.Image, err
	}
	if o.Shards == "" {
		return nil, "", fmt.Errorf("no still image and no shards to take a validation frame from")
	}
	ds, err := shards.Open(o.Shards)
	if err != nil {
		return nil, "", err
	}
	defer ds.Close()
	vids := ds.Videos(shards.SplitVal)
	if len(vids) == 0 {
		vids = ds.Videos(shards.SplitTrain)
	}
	if len(vids) == 0 {
		return nil, "", fmt.Errorf("shards %s hold no video", o.Shards)
	}
	sort.Slice(vids, func(i, j int) bool { return vids[i].ID < vids[j].ID })
	img, err := ds.Frame(vids[0].ID, 1)
	if err != nil {
		return nil, "", err
	}
	out := make([]float32, 3*res*res)
	shards.ToTensor(out, img, res)
	return out, "shards:" + vids[0].ID + ":1", nil
}

func writeMedia(ctx context.Context, o SampleOptions, x, cond []float32, res int) error {
	frames, err := media.Frames(x, o.Frames, res, res)
	if err != nil {
		return err
	}
	scale := o.Scale
	if scale <= 0 {
		scale = max(1, (256+res-1)/res)
	}
	opt := media.Options{FPS: o.FPS, Scale: scale}
	if err := media.WriteGIF(filepath.Join(o.OutDir, SampleGIF), frames, opt); err != nil {
		return err
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		// A GPU box without ffmpeg still gets the GIF and the contact sheet.
		if o.Log != nil {
			o.Log.Warn("ffmpeg not found: sample.mp4 not written (the GIF and PNG are)")
		}
	} else if err := media.WriteMP4(ctx, filepath.Join(o.OutDir, SampleMP4), frames, opt); err != nil {
		return err
	}
	if err := media.WriteContactSheet(filepath.Join(o.OutDir, SampleSheet), frames, 0, max(1, scale/2)); err != nil {
		return err
	}
	still, err := media.Frames(cond, 1, res, res)
	if err != nil {
		return err
	}
	return media.WriteContactSheet(filepath.Join(o.OutDir, SampleStill), still, 1, scale)
}
