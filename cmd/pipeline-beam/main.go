// Command pipeline-beam runs a config's preprocessing (ingest, frames,
// pack) as an Apache Beam pipeline, then the engine's run of those stages,
// which adopts the workers' results (package beamrun). It is a command of
// its own because the Beam SDK (gRPC, the runners) would double the size of
// pipeline; see the README's section on runners.
//
//	pipeline-beam run CONFIG [--stage S] [--runner prism|flink|spark|universal] [Beam flags]
//	pipeline-beam job-server --port N          a standalone prism job server
//	pipeline-beam worker-pool --listen ADDR    an external worker pool (EXTERNAL environments)
//
// Started with --worker (by a worker pool or a runner's boot), it is a Beam
// SDK worker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	// gs:// buckets (30 MB of client; pipeline itself reads s3://, file://, mem://).
	_ "gocloud.dev/blob/gcsblob"

	"github.com/timelapse-ml/pipeline/pipeline"
)

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "-") {
		// A worker: beam.Init runs the SDK harness and exits.
		flag.Parse()
		beam.Init()
		fmt.Fprintln(os.Stderr, "pipeline-beam: flags without a command; see pipeline-beam help")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		args = []string{"help"}
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "job-server":
		return cmdJobServer(ctx, args[1:], stderr)
	case "worker-pool":
		return cmdWorkerPool(ctx, args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return &pipeline.UsageError{Msg: fmt.Sprintf("unknown command %q (run, job-server, worker-pool)", args[0])}
}

const usage = `pipeline-beam: a config's preprocessing on Apache Beam
  pipeline-beam run CONFIG [--stage S] [--runner prism|flink|spark|universal] [--endpoint HOST:PORT
      --environment_type EXTERNAL --environment_config HOST:PORT] [--log-format text|json] [--quiet]
  pipeline-beam job-server [--port N]          a standalone prism job server
  pipeline-beam worker-pool [--listen ADDR]    an external worker pool for EXTERNAL environments
`

// parseInterleaved parses flags that may come before or after positional
// arguments on the global flag set (Beam's options live there).
func parseInterleaved(args []string) ([]string, error) {
	fs := flag.CommandLine
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, &pipeline.UsageError{Msg: err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "pipeline-beam:", err)
	var ue *pipeline.UsageError
	switch {
	case errors.As(err, &ue):
		return 2
	case errors.Is(err, context.Canceled):
		return 130
	}
	return 1
}

func logger(format string, quiet bool, w io.Writer) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if quiet {
		opts.Level = slog.LevelWarn
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, &pipeline.UsageError{Msg: fmt.Sprintf("--log-format %q: want text or json", format)}
}
