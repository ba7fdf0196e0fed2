package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	defaults "github.com/timelapse-ml/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/stages"
)

var errHelp = errors.New("help shown")

// allKinds lists the stage kinds the CLI knows (a variable so tests can add
// test-only kinds).
var allKinds = stages.All

// common holds the flags every config-taking command shares.
type common struct {
	logFormat string
	quiet     bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&c.quiet, "quiet", false, "log warnings and errors only")
}

// parse parses flags that may come before or after positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(os.Stdout)
				fs.PrintDefaults()
				return nil, errHelp
			}
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

func (c *common) logger(stderr io.Writer) (*slog.Logger, error) {
	level := slog.LevelInfo
	if c.quiet {
		level = slog.LevelWarn
	}
	opts := &slog.HandlerOptions{Level: level}
	w := stderr
	if isTerminal(stderr) {
		w = clearLineWriter{stderr}
	}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, &pipeline.UsageError{Msg: fmt.Sprintf("--log-format %q: want text or json", c.logFormat)}
}

// clearLineWriter erases a progress bar before each log line on a terminal.
type clearLineWriter struct{ w io.Writer }

func (c clearLineWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(c.w, "\r\033[K"); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// parseConfig parses a command's flags and loads the config it names.
func parseConfig(fs *flag.FlagSet, args []string) (*pipeline.Config, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	return loadConfig(pos)
}

// loadConfig loads the named config, ./pipeline.yaml, or the embedded default.
func loadConfig(pos []string) (*pipeline.Config, error) {
	reg := pipeline.NewRegistry(allKinds())
	if len(pos) > 1 {
		return nil, &pipeline.UsageError{Msg: "too many arguments: " + strings.Join(pos[1:], " ")}
	}
	if len(pos) == 1 {
		return pipeline.LoadFile(pos[0], reg)
	}
	if _, err := os.Stat("pipeline.yaml"); err == nil {
		return pipeline.LoadFile("pipeline.yaml", reg)
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	return pipeline.Load("<embedded>/pipeline.yaml", filepath.Clean(wd), defaults.PipelineYAML, reg)
}
