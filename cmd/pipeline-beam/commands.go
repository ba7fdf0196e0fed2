package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/runners/prism"

	"github.com/timelapse-ml/pipeline/cmd/pipeline-beam/beamrun"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/stages"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	stage := flag.String("stage", "", "the frames stage (or its ingest stage) to run; default: the config's only frames stage")
	logFormat := flag.String("log-format", "text", "log format: text or json")
	quiet := flag.Bool("quiet", false, "log warnings and errors only")
	attempts := flag.Int("attempts", 3, "times to run the Beam job before failing (a killed worker fails a job on prism; each attempt redoes only the videos no worker finished)")
	pos, err := parseInterleaved(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &pipeline.UsageError{Msg: "run takes one CONFIG"}
	}
	log, err := logger(*logFormat, *quiet, stderr)
	if err != nil {
		return err
	}
	if *runners.Runner == "" {
		*runners.Runner = "prism"
	}
	if !validRunner(*runners.Runner) {
		return &pipeline.UsageError{Msg: fmt.Sprintf("--runner %q: want one of %s", *runners.Runner, strings.Join(beamrun.Runners, ", "))}
	}
	if *jobopts.WorkerBinary == "" && *runners.Runner != "prism" && *runners.Runner != "local" {
		// Workers run this binary (Beam would otherwise compile one from source).
		if exe, err := os.Executable(); err == nil {
			*jobopts.WorkerBinary = exe
		}
	}
	beam.Init()
	cfg, err := pipeline.LoadFile(pos[0], pipeline.NewRegistry(stages.All()))
	if err != nil {
		return err
	}
	start := time.Now()
	var res *beamrun.Result
	if *runners.Runner == "local" {
		// The local engine over the same stages, in this binary: the reference.
		res, err = beamrun.Plan(ctx, cfg, *stage)
	} else {
		res, err = beamrun.Run(ctx, cfg, beamrun.Options{Runner: *runners.Runner, Stage: *stage, Attempts: *attempts, Log: log})
	}
	if err != nil {
		return err
	}
	results, err := pipeline.New(cfg, pipeline.Options{Stages: res.Stages, Log: log}).Run(ctx)
	for _, r := range results {
		state := "ran"
		if r.Err != nil {
			state = "FAILED: " + r.Err.Error()
		}
		fmt.Fprintf(stdout, "%-12s %-8s %s\n", r.Stage, r.Kind, state)
		for _, line := range r.Reports {
			fmt.Fprintf(stdout, "  %s: %s\n", r.Stage, line)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d videos on %s in %s (beam job %s)\n", res.Videos, *runners.Runner,
		time.Since(start).Round(10*time.Millisecond), res.Elapsed.Round(10*time.Millisecond))
	return stages.RemoveStaging(cfg.Workdir)
}

func validRunner(name string) bool {
	if name == "local" {
		return true
	}
	for _, r := range beamrun.Runners {
		if r == name {
			return true
		}
	}
	return false
}

// cmdJobServer serves prism's job service (and its web UI's port is not
// opened) until interrupted.
func cmdJobServer(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("job-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 8073, "job service port (0: pick one; it is printed)")
	if err := fs.Parse(args); err != nil {
		return &pipeline.UsageError{Msg: err.Error()}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if _, err := prism.CreateJobServer(ctx, prism.Options{Port: *port, CancelFn: cancel}); err != nil {
		return fmt.Errorf("job server: %w", err)
	}
	fmt.Fprintf(stderr, "prism job server on port %d\n", *port)
	<-ctx.Done()
	return nil
}

// cmdWorkerPool serves an external worker pool until interrupted.
func cmdWorkerPool(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker-pool", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:50000", "address to listen on (the runner's --environment_config)")
	if err := fs.Parse(args); err != nil {
		return &pipeline.UsageError{Msg: err.Error()}
	}
	log, _ := logger("text", false, stderr)
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	p, err := beamrun.ListenPool(*listen, exe, log)
	if err != nil {
		return err
	}
	log.Info("worker pool", "addr", p.Addr())
	go func() { <-ctx.Done(); p.Stop() }()
	if err := p.Serve(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
