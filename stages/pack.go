package stages

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/shards"
)

// PackKind packs the frames of the frames stage it needs into Arrow shards
// and index.json (package shards).
func PackKind() pipeline.Kind {
	return pipeline.Kind{
		Name:    "pack",
		Version: "1",
		Doc: "Packs the frames stage's JPEG frames into Arrow IPC files (shard-00000.arrow...), one row per " +
			"frame (video_id, frame, pts_seconds, width, height, jpeg), a video's frames in order and never split " +
			"across shards, plus index.json with each shard's rows, videos, bytes and SHA-256 and the train/val " +
			"split by video. The same frames give byte-identical shards. Schema metadata records the pack " +
			"params, the frames recipe and the tool versions. Each shard is a cached item: a killed run keeps " +
			"the shards it finished, and a re-run rewrites only the shards whose content changes (every pack " +
			"param is in each shard's metadata, so changing one rewrites them all). Videos fill the shards in order of their id (a hash " +
			"of the video file), so adding, removing or replacing a video regroups, and rewrites, the shards from " +
			"its place on. Verify re-checks every shard's checksum.",
		Params: []pipeline.ParamSpec{
			{Name: "shard_mb", Type: pipeline.Float, Default: 256.0, Min: pipeline.Bound(0.001), Max: pipeline.Bound(65536),
				Doc: "target shard size in MiB; a video larger than that gets a shard of its own"},
			{Name: "val_fraction", Type: pipeline.Float, Default: 0.1, Min: pipeline.Bound(0), Max: pipeline.Bound(0.9),
				Doc: "fraction of videos held out for validation, chosen by a hash of seed and video id (stable when videos are added)"},
			{Name: "compression", Type: pipeline.String, Default: shards.CompressionNone, Enum: []string{shards.CompressionNone, shards.CompressionZstd},
				Doc: "Arrow buffer compression; JPEG is already compressed (zstd saves a few percent and gives up zero-copy reads)"},
			{Name: "seed", Type: pipeline.Int, Default: 0, Doc: "seed of the train/val split"},
			{Name: "workers", NoKey: true, Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(1024),
				Doc: "shards written at once (0: CPU count)"},
		},
		Tools:  []pipeline.Tool{{Name: "ffmpeg", VersionArgs: []string{"-version"}}},
		Run:    runPack,
		Verify: func(ctx context.Context, dir string, _ pipeline.Params) error { return shards.Verify(dir) },
	}
}

func runPack(ctx context.Context, r *pipeline.StageRun) error {
	if len(r.Needs) != 1 {
		return fmt.Errorf("pack: needs exactly one frames stage (needs: %v)", r.Needs)
	}
	in := r.Input(r.Needs[0])
	videos, err := frames.ReadIndex(in)
	if err != nil {
		return fmt.Errorf("pack: input of stage %s: %w", r.Needs[0], err)
	}
	// The version of the ffmpeg that made the frames: the frames stage's key
	// holds it, so an up-to-date frames stage was made by this one.
	ffv, err := frames.FFmpegVersion(ctx, "")
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	prog := r.Progress("videos", len(videos))
	defer prog.Done()
	start := time.Now()
	opt := packOptions(r.Params, ffv)
	opt.FramesDir, opt.Videos, opt.OnVideo = in, videos, func(string) { prog.Add(1) }
	res, err := shards.Pack(ctx, opt, adoptingOutput{r, adoptingItem(r, PackKind())})
	if err != nil {
		return err
	}
	el := time.Since(start)
	ix := res.Index
	var frameCount int
	var outBytes int64
	for _, s := range ix.Shards {
		frameCount += s.Rows
		outBytes += s.Bytes
	}
	mbps := float64(res.InputBytes) / (1 << 20) / el.Seconds()
	r.Log.Info("pack done", slog.Int("videos", len(ix.Videos)), slog.Int("train", len(ix.Split.Train)), slog.Int("val", len(ix.Split.Val)),
		slog.Int("frames", frameCount), slog.Int("shards", len(ix.Shards)), slog.Int64("bytes", outBytes), slog.Float64("mb_per_s", mbps),
		slog.Duration("elapsed", el.Round(time.Millisecond)))
	r.Report(fmt.Sprintf("%d videos (%d train, %d val), %d frames in %d shards, %.1f MiB; %.1f MiB/s",
		len(ix.Videos), len(ix.Split.Train), len(ix.Split.Val), frameCount, len(ix.Shards),
		float64(outBytes)/(1<<20), mbps))
	for _, s := range res.Skipped {
		r.Report("skipped " + s)
	}
	for _, v := range videos {
		if v.Status != frames.StatusOK && v.Frames > 0 {
			r.Report(fmt.Sprintf("packed damaged %s (frames kept by the frames stage)", v.ID))
		}
	}
	return nil
}

// packOptions are the pack params p as shards.PackOptions (without the
// frames), ffv the version of the ffmpeg that made the frames.
func packOptions(p pipeline.Params, ffv string) shards.PackOptions {
	return shards.PackOptions{
		ShardBytes:  int64(p.Float("shard_mb") * (1 << 20)),
		ValFraction: p.Float("val_fraction"),
		Seed:        int64(p.Int("seed")),
		Compression: p.String("compression"),
		Tools:       map[string]string{"ffmpeg": ffv},
		Workers:     p.Int("workers"),
	}
}
