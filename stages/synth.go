package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/synth"
)

// synthWorkers is how many videos render at once (see synth.DefaultWorkers).
const synthWorkers = synth.DefaultWorkers

// SynthKind renders procedural timelapse videos (package synth) into the
// stage's folder, one cached item per video, so changing count renders only
// the new ones.
func SynthKind() pipeline.Kind {
	return pipeline.Kind{
		Name:    "synth",
		Version: "1",
		Doc: "Renders procedural timelapse videos: a sky over a landscape silhouette, fractal clouds " +
			"drifting with a per-video wind, light shifting across the clip, frozen seconds at both ends. " +
			"Deterministic from the seed. Writes synth-NNNN.mp4 (or .webm) into its folder; with faults, " +
			"also the bad files a real folder holds (empty, truncated, too short, audio-only, not a video) " +
			"and one good video with an awkward name.",
		Params: []pipeline.ParamSpec{
			{Name: "count", Type: pipeline.Int, Default: 8, Min: pipeline.Bound(0), Max: pipeline.Bound(100000), Doc: "number of videos"},
			{Name: "width", Type: pipeline.Int, Default: synth.DefaultWidth, Min: pipeline.Bound(16), Max: pipeline.Bound(8192), Doc: "frame width in pixels (even)"},
			{Name: "height", Type: pipeline.Int, Default: synth.DefaultHeight, Min: pipeline.Bound(16), Max: pipeline.Bound(8192), Doc: "frame height in pixels (even)"},
			{Name: "fps", Type: pipeline.Float, Default: float64(synth.DefaultFPS), Min: pipeline.Bound(1), Max: pipeline.Bound(240), Doc: "frame rate"},
			{Name: "seconds", Type: pipeline.Float, Default: float64(synth.DefaultSeconds), Min: pipeline.Bound(0.1), Max: pipeline.Bound(3600), Doc: "length of each video in seconds"},
			{Name: "codec", Type: pipeline.String, Default: synth.H264, Enum: []string{synth.H264, synth.VP9}, Doc: "h264 (.mp4) or vp9 (.webm, lossless)"},
			{Name: "frozen_head", Type: pipeline.Duration, Default: 2 * time.Second, Doc: "identical frames at the start"},
			{Name: "frozen_tail", Type: pipeline.Duration, Default: 2 * time.Second, Doc: "identical frames at the end"},
			{Name: "seed", Type: pipeline.Int, Default: 1, Doc: "scene seed; video i uses a seed derived from it and i"},
			{Name: "faults", Type: pipeline.Bool, Default: false, Doc: "also write the bad inputs a real folder holds, and a good video with spaces and non-ASCII in its name"},
			{Name: "pix_fmt", Type: pipeline.String, Default: "yuv420p", Enum: []string{"yuv420p", "yuv420p10le"}, Doc: "encoded pixel format (yuv420p10le: 10-bit)"},
			{Name: "rotate", Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(270), Doc: "display rotation written as MP4 metadata: 0, 90, 180 or 270 (h264 only)"},
			{Name: "vfr", Type: pipeline.Bool, Default: false, Doc: "variable frame rate: drop 2 frames in 7 of the motion span, keeping timestamps"},
		},
		Tools:  []pipeline.Tool{{Name: "ffmpeg", VersionArgs: []string{"-version"}}},
		Run:    runSynth,
		Verify: verifySynth,
	}
}

// verifySynth decodes every video of the set (synth.Check: codec, size,
// frame count) and checks that each fault file is there.
func verifySynth(ctx context.Context, dir string, p pipeline.Params) error {
	set := synthSet(p)
	var errs []error
	for i := range set.Count {
		if err := synth.Check(ctx, set.VideoSpec(i), filepath.Join(dir, set.VideoName(i))); err != nil {
			errs = append(errs, err)
		}
	}
	if set.Faults {
		for _, f := range synth.Faults(set.Spec) {
			if _, err := os.Stat(filepath.Join(dir, f.Name)); err != nil {
				errs = append(errs, fmt.Errorf("synth: fault file: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

func synthSet(p pipeline.Params) synth.Set {
	return synth.Set{
		Count:  p.Int("count"),
		Faults: p.Bool("faults"),
		Spec: synth.Spec{
			Width:      p.Int("width"),
			Height:     p.Int("height"),
			FPS:        p.Float("fps"),
			Seconds:    p.Float("seconds"),
			FrozenHead: p.Duration("frozen_head").Seconds(),
			FrozenTail: p.Duration("frozen_tail").Seconds(),
			Codec:      p.String("codec"),
			PixFmt:     p.String("pix_fmt"),
			Rotate:     p.Int("rotate"),
			VFR:        p.Bool("vfr"),
			Seed:       int64(p.Int("seed")),
		},
	}
}

func runSynth(ctx context.Context, r *pipeline.StageRun) error {
	set := synthSet(r.Params)
	if err := set.Spec.Validate(); err != nil {
		return err
	}
	ffv, err := synth.FFmpegVersion(ctx)
	if err != nil {
		return err
	}
	type job struct {
		name string
		fp   string
		make func(ctx context.Context, path string) error
	}
	var jobs []job
	for i := range set.Count {
		spec := set.VideoSpec(i)
		jobs = append(jobs, job{set.VideoName(i), fingerprint("video", spec, ffv),
			func(ctx context.Context, path string) error { return synth.Render(ctx, spec, path) }})
	}
	if set.Faults {
		for _, f := range synth.Faults(set.Spec) {
			jobs = append(jobs, job{f.Name, fingerprint("fault:"+string(f.Kind), set.Spec.WithDefaults(), ffv),
				func(ctx context.Context, path string) error { return synth.WriteFault(ctx, f, set.Spec, path) }})
		}
	}

	prog := r.Progress("videos", len(jobs))
	defer prog.Done()
	var rendered, cached int
	results := make([]bool, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(synthWorkers)
	for i, j := range jobs {
		g.Go(func() error {
			hit, err := r.Item(gctx, j.name, j.fp, func(tmp string) error { return j.make(gctx, tmp) })
			if err != nil {
				return fmt.Errorf("synth %s: %w", j.name, err)
			}
			results[i] = hit
			prog.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, hit := range results {
		if hit {
			cached++
		} else {
			rendered++
		}
	}
	r.Log.Info("synth done", slog.Int("rendered", rendered), slog.Int("cached", cached), slog.String("dir", filepath.Base(r.OutDir)))
	r.Report(fmt.Sprintf("%d videos (%dx%d, %g fps, %g s, %s): %d rendered, %d cached",
		set.Count, set.Width, set.Height, set.FPS, set.Seconds, set.Codec, rendered, cached))
	return nil
}

// fingerprint is everything an item's bytes depend on.
func fingerprint(what string, spec synth.Spec, ffmpegVersion string) string {
	b, _ := json.Marshal(struct {
		What   string
		Spec   synth.Spec
		FFmpeg string
	}{what, spec.WithDefaults(), ffmpegVersion})
	return string(b)
}
