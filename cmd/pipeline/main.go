// Command pipeline turns a folder of videos into a trained video-diffusion
// model, from one declarative YAML file. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/timelapse-ml/pipeline/pipeline"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitCanceled = 130
)

const usage = `pipeline turns a folder of videos into a trained video-diffusion model.

Usage:
  pipeline run [CONFIG] [--stage NAME]... [--force] [--dry-run] [--explain] [--strict]
  pipeline status [CONFIG]
  pipeline validate [CONFIG]
  pipeline verify [CONFIG]
  pipeline stages
  pipeline plan [CONFIG] [--gpu-memory 24GiB] [--precision float16]
  pipeline model info PATH [--json]
  pipeline model convert IN OUT
  pipeline model tokenize [--tokenizer DIR | MODEL] TEXT...

CONFIG defaults to ./pipeline.yaml, or the embedded default when that file
does not exist. Common flags: --log-format text|json, --quiet.
Exit codes: 0 ok, 1 a stage failed, 2 bad config or usage, 130 interrupted.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process the default way
	}()
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(ctx, args[1:], stdout, stderr)
	case "status":
		err = cmdStatus(args[1:], stdout, stderr)
	case "validate":
		err = cmdValidate(args[1:], stdout, stderr)
	case "verify":
		err = cmdVerify(ctx, args[1:], stdout, stderr)
	case "stages":
		err = cmdStages(args[1:], stdout, stderr)
	case "model":
		err = cmdModel(args[1:], stdout, stderr)
	case "plan":
		err = cmdPlan(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "pipeline: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	return exitCode(ctx, err, stderr)
}

func exitCode(ctx context.Context, err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var cfgErr *pipeline.ConfigError
	var useErr *pipeline.UsageError
	switch {
	case errors.As(err, &cfgErr):
		fmt.Fprintln(stderr, cfgErr.Error())
		fmt.Fprintf(stderr, "%d problem(s); nothing was run\n", len(cfgErr.Problems))
		return exitUsage
	case errors.As(err, &useErr):
		fmt.Fprintln(stderr, "pipeline:", useErr.Msg)
		return exitUsage
	case errors.Is(err, errHelp):
		return exitOK
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "pipeline: interrupted; finished work is kept, run again to resume")
		return exitCanceled
	}
	fmt.Fprintln(stderr, "pipeline:", err)
	return exitFailed
}
