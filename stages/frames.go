package stages

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/pipeline"
)

// FramesKind extracts the recipe's JPEG frames of every usable video in the
// manifest of the ingest stage it needs (package frames), one cached item
// per video, and writes index.jsonl.
func FramesKind() pipeline.Kind {
	return pipeline.Kind{
		Name:    "frames",
		Version: "1",
		Doc: "Extracts each usable video's frames as the recipe does: skip trim_head, keep duration minus both " +
			"trims, output -r fps, scale the short side to size and centre-crop size x size, JPEG at -q:v " +
			"jpeg_quality, delete the first frame. Writes <video-id>/000001.jpg... and index.jsonl; byte-identical " +
			"to the recipe's ffmpeg command. A video with too few frames or ffmpeg errors is marked damaged. " +
			"Each video is cached by its content hash, the params and the ffmpeg version.",
		Params: []pipeline.ParamSpec{
			{Name: "trim_head", Type: pipeline.Duration, Default: 2 * time.Second, Doc: "seconds skipped at the start"},
			{Name: "trim_tail", Type: pipeline.Duration, Default: 2 * time.Second, Doc: "seconds cut at the end"},
			{Name: "fps", Type: pipeline.Float, Default: 5.0, Min: pipeline.Bound(0.01), Max: pipeline.Bound(1000), Doc: "output frame rate (ffmpeg output -r)"},
			{Name: "size", Type: pipeline.Int, Default: 512, Min: pipeline.Bound(2), Max: pipeline.Bound(8192), Doc: "short side scaled to size, then centre crop size x size (even)"},
			{Name: "jpeg_quality", Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(31), Doc: "ffmpeg -q:v (0 as the recipe; lower is better)"},
			{Name: "drop_first", Type: pipeline.Bool, Default: true, Doc: "delete the first output frame (the one at trim_head), as the recipe does"},
			{Name: "workers", NoKey: true, Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(1024), Doc: "videos extracted at once, two ffmpeg processes each (0: CPU count)"},
			{Name: "keep_damaged", Type: pipeline.Bool, Default: false, Doc: "keep the frames of a damaged video (short, or ffmpeg errors); by default it is set aside with no frames"},
		},
		Tools: []pipeline.Tool{{Name: "ffmpeg", VersionArgs: []string{"-version"}}},
		Run:   runFrames,
		Verify: func(_ context.Context, dir string, _ pipeline.Params) error {
			return frames.VerifyDir(dir)
		},
	}
}

func runFrames(ctx context.Context, r *pipeline.StageRun) error {
	if len(r.Needs) != 1 {
		return fmt.Errorf("frames: needs exactly one ingest stage (needs: %v)", r.Needs)
	}
	manifest, err := ingest.ReadManifest(filepath.Join(r.Input(r.Needs[0]), ingest.ManifestFile))
	if err != nil {
		return fmt.Errorf("frames: input of stage %s: %w", r.Needs[0], err)
	}
	p := r.Params
	b := frames.Batch{
		Params: frames.Params{
			TrimHead:    p.Duration("trim_head").Seconds(),
			TrimTail:    p.Duration("trim_tail").Seconds(),
			FPS:         p.Float("fps"),
			Size:        p.Int("size"),
			JPEGQuality: p.Int("jpeg_quality"),
			DropFirst:   p.Bool("drop_first"),
		},
		KeepDamaged: p.Bool("keep_damaged"),
		Workers:     p.Int("workers"),
		Item:        adoptingItem(r, FramesKind()),
	}
	if err := b.Params.Validate(); err != nil {
		return err
	}
	if b.FFmpegVersion, err = frames.FFmpegVersion(ctx, ""); err != nil {
		return err
	}
	var srcs []frames.Source
	for _, v := range manifest {
		if v.OK() {
			srcs = append(srcs, frames.SourceOf(v))
		}
	}
	expected := 0
	for _, s := range srcs {
		expected += b.Params.ExpectedFrames(s.Duration)
	}
	prog := r.Progress("videos", len(srcs))
	defer prog.Done()
	fprog := r.Progress("frames", expected) // its rate is the frames/s
	defer fprog.Done()
	b.Done = func(v frames.Video, cached bool) {
		prog.Add(1)
		fprog.Add(v.Frames)
		r.Log.Debug("video done", slog.String("id", v.ID), slog.Int("frames", v.Frames), slog.Bool("cached", cached), slog.String("status", v.Status))
	}
	rows, st, err := b.Run(ctx, r.OutDir, srcs)
	if err != nil {
		return err
	}
	if err := frames.WriteIndex(r.OutDir, rows, r.WriteFile); err != nil {
		return err
	}

	var damaged []string
	total := 0
	for _, v := range rows {
		total += v.Frames
		if v.Status == frames.StatusDamaged {
			what := "frames dropped"
			if b.KeepDamaged {
				what = "frames kept"
			}
			line := fmt.Sprintf("damaged %s (%s), %s: %s", v.ID, filepath.Base(v.Source), what, v.Message)
			damaged = append(damaged, line)
			r.Log.Warn("damaged video", slog.String("id", v.ID), slog.String("source", v.Source), slog.String("message", v.Message))
		}
	}
	r.Log.Info("frames done", slog.Int("videos", len(rows)), slog.Int("extracted", st.Extracted), slog.Int("cached", st.Cached),
		slog.Int("damaged", len(damaged)), slog.Int("frames_written", st.Frames), slog.Float64("frames_per_s", st.FramesPerSecond()),
		slog.Duration("elapsed", st.Elapsed.Round(time.Millisecond)))
	r.Report(fmt.Sprintf("%d videos, %d frames (%d extracted, %d cached, %d damaged); %.1f frames/s",
		len(rows), total, st.Extracted, st.Cached, len(damaged), st.FramesPerSecond()))
	r.Report(damaged...)
	if r.Strict && len(damaged) > 0 {
		return fmt.Errorf("frames: --strict: %d damaged video(s), first: %s", len(damaged), damaged[0])
	}
	return nil
}
