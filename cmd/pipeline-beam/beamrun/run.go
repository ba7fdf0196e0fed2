package beamrun

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	// The runners --runner may name: prism in-process, and the portable ones.
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/flink"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/spark"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/runners/universal"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/stages"
)

// Runners are the values --runner accepts.
var Runners = []string{"prism", "flink", "spark", "universal"}

// Options configures Run.
type Options struct {
	// Runner names a registered Beam runner ("prism": in-process).
	Runner string
	// Stage names the frames stage (or its ingest stage); "" for the
	// config's only frames stage.
	Stage string
	Log   *slog.Logger
}

// Result tells what the Beam job did.
type Result struct {
	Videos  int
	Elapsed time.Duration
	// Stages are the config's stages the job covered, in run order: the
	// ingest stage, the frames stage (and the pack stage that needs it).
	Stages []string
}

// Run runs the Beam job of cfg's preprocessing: every video found by the
// ingest stage is probed and, when usable, extracted into the workdir's
// staging folder. The engine's run of Result.Stages that follows adopts
// the staged work.
func Run(ctx context.Context, cfg *pipeline.Config, opt Options) (*Result, error) {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, paths, res, err := plan(ctx, cfg, opt.Stage)
	if err != nil {
		return nil, err
	}
	p, s := beam.NewPipelineWithRoot()
	rows := Build(s, *w, paths)
	for _, name := range res.Stages[2:] {
		pw, err := stages.NewPackWork(cfg, name, w.FFmpeg)
		if err != nil {
			return nil, err
		}
		BuildPack(s, *pw, w.FramesDir(), rows)
	}
	log.Info("beam job", "runner", opt.Runner, "videos", len(paths), "staging", stages.StagingDir(cfg.Workdir, ""))
	start := time.Now()
	if _, err := beam.Run(ctx, opt.Runner, p); err != nil {
		return nil, fmt.Errorf("beam job on %s: %w", opt.Runner, err)
	}
	res.Elapsed = time.Since(start)
	log.Info("beam job done", "runner", opt.Runner, "videos", len(paths), "elapsed", res.Elapsed.Round(time.Millisecond))
	return res, nil
}

// Plan returns what Run would cover (the videos, the stages), running nothing.
func Plan(ctx context.Context, cfg *pipeline.Config, stage string) (*Result, error) {
	_, _, res, err := plan(ctx, cfg, stage)
	return res, err
}

func plan(ctx context.Context, cfg *pipeline.Config, stage string) (*stages.VideoWork, []string, *Result, error) {
	w, err := stages.NewVideoWork(ctx, cfg, stage)
	if err != nil {
		return nil, nil, nil, err
	}
	paths, err := w.List(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	res := &Result{Videos: len(paths), Stages: []string{w.IngestStage, w.FramesStage}}
	for _, st := range cfg.Stages {
		if st.Kind.Name == "pack" && len(st.Needs) == 1 && st.Needs[0] == w.FramesStage {
			res.Stages = append(res.Stages, st.Name)
		}
	}
	return w, paths, res, nil
}
