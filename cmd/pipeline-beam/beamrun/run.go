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
	// Attempts is how many times the job runs before its failure is
	// returned (0: once). Prism does not retry a bundle whose worker died,
	// so a killed worker fails the job; the next attempt redoes only the
	// videos that no worker finished (the rest are staged).
	Attempts int
	Log      *slog.Logger
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
	log.Info("beam job", "runner", opt.Runner, "videos", len(paths), "staging", stages.StagingDir(cfg.Workdir, ""))
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := runJob(ctx, cfg, opt.Runner, w, paths, res.Stages[2:])
		if err == nil {
			break
		}
		if attempt >= max(opt.Attempts, 1) || ctx.Err() != nil {
			return nil, err
		}
		log.Warn("beam job failed, running it again", slog.String("runner", opt.Runner), slog.Int("attempt", attempt),
			slog.Int("attempts", opt.Attempts), slog.String("error", err.Error()))
	}
	res.Elapsed = time.Since(start)
	log.Info("beam job done", "runner", opt.Runner, "videos", len(paths), "elapsed", res.Elapsed.Round(time.Millisecond))
	return res, nil
}

// runJob builds and runs the job once: probe and extract every video, and
// write the shards of each pack stage in packs.
func runJob(ctx context.Context, cfg *pipeline.Config, runner string, w *stages.VideoWork, paths, packs []string) error {
	p, s := beam.NewPipelineWithRoot()
	rows := Build(s, *w, paths)
	for _, name := range packs {
		pw, err := stages.NewPackWork(cfg, name, w.FFmpeg)
		if err != nil {
			return err
		}
		BuildPack(s, *pw, w.FramesDir(), rows)
	}
	if _, err := beam.Run(ctx, runner, p); err != nil {
		return fmt.Errorf("beam job on %s: %w", runner, err)
	}
	return nil
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
