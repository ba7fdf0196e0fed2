package stages

import (
	"context"
	"fmt"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/shards"
)

// PackWork is the shard writing of a pack stage done outside the engine
// (by Beam workers, after a group by shard number): each shard lands in
// the staging folder with the fingerprint the stage gives it, and the
// engine's next run of the pack stage adopts it. Plain data, like VideoWork.
type PackWork struct {
	Workdir string
	Stage   string
	// Opt are the stage's pack options (no frames, no callbacks).
	ShardBytes  int64
	ValFraction float64
	Seed        int64
	Compression string
	FFmpeg      string
}

// NewPackWork reads the params of the pack stage named stage; ffv is the
// version of the ffmpeg that makes the frames.
func NewPackWork(cfg *pipeline.Config, stage, ffv string) (*PackWork, error) {
	s := cfg.Stage(stage)
	if s == nil || s.Kind.Name != "pack" {
		return nil, fmt.Errorf("no pack stage %q in %s", stage, cfg.File)
	}
	o := packOptions(s.Params, ffv)
	return &PackWork{Workdir: cfg.Workdir, Stage: stage, ShardBytes: o.ShardBytes, ValFraction: o.ValFraction,
		Seed: o.Seed, Compression: o.Compression, FFmpeg: ffv}, nil
}

func (w *PackWork) options(framesDir string, rows []frames.Video) shards.PackOptions {
	return shards.PackOptions{FramesDir: framesDir, Videos: rows, ShardBytes: w.ShardBytes, ValFraction: w.ValFraction,
		Seed: w.Seed, Compression: w.Compression, Tools: map[string]string{"ffmpeg": w.FFmpeg}}
}

// Plan plans the shards of the videos rows whose frames are under
// framesDir, as the pack stage will.
func (w *PackWork) Plan(framesDir string, rows []frames.Video) ([]shards.ShardJob, error) {
	jobs, _, err := shards.PlanShards(w.options(framesDir, rows))
	return jobs, err
}

// Write writes one shard into the staging folder (nothing when it is
// staged already) and reports whether it wrote it.
func (w *PackWork) Write(ctx context.Context, framesDir string, job shards.ShardJob) (bool, error) {
	st := newStaging(w.Workdir, w.Stage, PackKind())
	cached, err := st.build(ctx, job.File(), job.Fingerprint(), func(tmp string) error {
		_, err := job.Write(ctx, framesDir, tmp)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("pack %s: %w", job.File(), err)
	}
	return !cached, nil
}
