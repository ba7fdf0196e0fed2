package stages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/pipeline"
)

// VideoWork is the per-video work of a frames stage and the ingest stage it
// needs, done outside the engine: by one slice of a Kubernetes Indexed Job
// (RunSlice) or by the elements of a Beam pipeline. Each finished probe and
// each video's frames land in the workdir's staging folder (StagingFolder)
// with the fingerprint the stage would give them, so the engine's next run
// of the config adopts them and writes the same manifest, frames and index
// as a local run. Its fields are plain data (it travels to Beam workers as
// JSON).
type VideoWork struct {
	Workdir string
	// IngestStage and FramesStage name the two stages in the config.
	IngestStage, FramesStage string
	// Root is the folder ingest searches; Include and Exclude its globs.
	Root             string
	Include, Exclude []string
	Ingest           ingest.Options
	// IngestTools is ingest's fingerprint of the ffprobe and ffmpeg versions.
	IngestTools string
	Frames      frames.Params
	KeepDamaged bool
	// FFmpeg is the first line of `ffmpeg -version`.
	FFmpeg string
	// Workers bounds the videos handled at once by one process (0: CPU count).
	Workers int
}

// NewVideoWork reads the params of the frames stage named stage (or, when
// stage names an ingest stage, of the one frames stage that needs it) and of
// its ingest stage from cfg, and asks the tools for their versions.
func NewVideoWork(ctx context.Context, cfg *pipeline.Config, stage string) (*VideoWork, error) {
	fs, err := framesStageOf(cfg, stage)
	if err != nil {
		return nil, err
	}
	if len(fs.Needs) != 1 || cfg.Stage(fs.Needs[0]).Kind.Name != "ingest" {
		return nil, fmt.Errorf("stage %s: a sliced frames stage needs exactly one ingest stage (needs: %v)", fs.Name, fs.Needs)
	}
	is := cfg.Stage(fs.Needs[0])
	ip, fp := is.Params, fs.Params
	w := &VideoWork{
		Workdir:     cfg.Workdir,
		IngestStage: is.Name,
		FramesStage: fs.Name,
		Include:     ip.Strings("include"),
		Exclude:     ip.Strings("exclude"),
		Ingest: ingest.Options{
			TrimHead:  ip.Duration("trim_head").Seconds(),
			TrimTail:  ip.Duration("trim_tail").Seconds(),
			FPS:       ip.Float("fps"),
			DropFirst: ip.Bool("drop_first"),
		},
		Frames: frames.Params{
			TrimHead:    fp.Duration("trim_head").Seconds(),
			TrimTail:    fp.Duration("trim_tail").Seconds(),
			FPS:         fp.Float("fps"),
			Size:        fp.Int("size"),
			JPEGQuality: fp.Int("jpeg_quality"),
			DropFirst:   fp.Bool("drop_first"),
		},
		KeepDamaged: fp.Bool("keep_damaged"),
		Workers:     fp.Int("workers"),
	}
	if w.Root, err = ingestRoot(cfg, is); err != nil {
		return nil, err
	}
	if err := w.Frames.Validate(); err != nil {
		return nil, err
	}
	if w.IngestTools, err = ingest.ToolVersions(ctx, w.Ingest); err != nil {
		return nil, err
	}
	if w.FFmpeg, err = frames.FFmpegVersion(ctx, ""); err != nil {
		return nil, err
	}
	return w, nil
}

// ingestRoot returns the folder the ingest stage is searches: its folder
// param, or the output folder of the stage it needs (made beforehand).
func ingestRoot(cfg *pipeline.Config, is *pipeline.Stage) (string, error) {
	switch p := is.Params; {
	case p.Has("folder") && p.String("folder") != "":
		return p.String("folder"), nil
	case len(is.Needs) == 1:
		return filepath.Join(cfg.Workdir, is.Needs[0]), nil
	}
	return "", fmt.Errorf("stage %s: set folder, or need exactly one stage whose output holds the videos", is.Name)
}

// framesStageOf returns the frames stage named stage, the only frames
// stage that needs the ingest stage named stage, or, for "", the config's
// only frames stage.
func framesStageOf(cfg *pipeline.Config, stage string) (*pipeline.Stage, error) {
	if stage == "" {
		var found []*pipeline.Stage
		for _, o := range cfg.Stages {
			if o.Kind.Name == "frames" {
				found = append(found, o)
			}
		}
		if len(found) != 1 {
			return nil, &pipeline.UsageError{Msg: fmt.Sprintf("%d frames stages in %s: name one with --stage", len(found), cfg.File)}
		}
		return found[0], nil
	}
	s := cfg.Stage(stage)
	if s == nil {
		return nil, &pipeline.UsageError{Msg: fmt.Sprintf("no stage %q in %s", stage, cfg.File)}
	}
	switch s.Kind.Name {
	case "frames":
		return s, nil
	case "ingest":
		var found []*pipeline.Stage
		for _, o := range cfg.Stages {
			if o.Kind.Name == "frames" && len(o.Needs) == 1 && o.Needs[0] == s.Name {
				found = append(found, o)
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		return nil, &pipeline.UsageError{Msg: fmt.Sprintf("stage %s: %d frames stages need it; name one", s.Name, len(found))}
	}
	return nil, &pipeline.UsageError{Msg: fmt.Sprintf("stage %s is of kind %s: only ingest and frames run per video", s.Name, s.Kind.Name)}
}

// List returns the videos ingest finds, sorted: the elements to spread.
// The videos of a bucket are fetched into the workdir first.
func (w *VideoWork) List(ctx context.Context) ([]string, error) {
	return findVideos(ctx, w.Root, w.Workdir, w.Include, w.Exclude)
}

// Inspect probes and hashes one video (ingest.Inspect), staging the probe,
// or returns the staged probe of an earlier worker with the same
// fingerprint.
func (w *VideoWork) Inspect(ctx context.Context, path string) (ingest.Video, error) {
	fi, err := os.Stat(path)
	if err != nil { // vanished: the engine's ingest quarantines it
		return ingest.Inspect(ctx, path, w.Ingest)
	}
	st := newStaging(w.Workdir, w.IngestStage, IngestKind())
	rel, fp := probeItem(path, fi, w.Ingest, w.IngestTools)
	v, _, err := inspectItem(ctx, st.build, st.dir, rel, fp, path, w.Ingest, "staged probe")
	return v, err
}

// Batch returns the frames batch of the stage, building into the staging
// folder (its Run's dir is FramesDir()).
func (w *VideoWork) Batch() frames.Batch {
	st := newStaging(w.Workdir, w.FramesStage, FramesKind())
	return frames.Batch{Params: w.Frames, KeepDamaged: w.KeepDamaged, Workers: w.Workers,
		FFmpegVersion: w.FFmpeg, Item: st.build}
}

// FramesDir is the staging folder of the frames stage: <FramesDir>/<id>
// holds a staged video's frames.
func (w *VideoWork) FramesDir() string { return StagingDir(w.Workdir, w.FramesStage) }

// Extract extracts the frames of the usable videos among vs into the
// staging folder (each at most once, by id) and returns their index rows.
func (w *VideoWork) Extract(ctx context.Context, vs []ingest.Video) ([]frames.Video, frames.Stats, error) {
	var srcs []frames.Source
	seen := map[string]bool{}
	for _, v := range vs {
		if v.OK() && !seen[v.ID] {
			seen[v.ID] = true
			srcs = append(srcs, frames.SourceOf(v))
		}
	}
	return w.Batch().Run(ctx, w.FramesDir(), srcs)
}
