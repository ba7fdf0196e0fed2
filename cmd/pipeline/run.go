package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/stages"
	"github.com/timelapse-ml/pipeline/trainer/dist"
)

// stageList is a repeatable --stage flag.
type stageList []string

func (s *stageList) String() string     { return strings.Join(*s, ",") }
func (s *stageList) Set(v string) error { *s = append(*s, v); return nil }

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c common
	c.register(fs)
	var only stageList
	fs.Var(&only, "stage", "re-run this stage (repeatable), after any stale stage it needs")
	force := fs.Bool("force", false, "re-run every selected stage")
	dry := fs.Bool("dry-run", false, "print the plan and the reason for each stage; run nothing")
	explain := fs.Bool("explain", false, "print what went into each stage's cache key; run nothing")
	strict := fs.Bool("strict", false, "fail when any input is quarantined")
	var sl sliceFlags
	sl.register(fs)
	cfg, err := parseConfig(fs, args)
	if err != nil {
		return err
	}
	if sl.count > 0 || sl.index >= 0 {
		return runSlice(ctx, cfg, only, sl, stdout)
	}
	if sl.merge {
		if err := checkMerge(ctx, cfg, only); err != nil {
			return err
		}
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	opts := pipeline.Options{Stages: only, Force: *force, Strict: *strict, Log: log}
	if !c.quiet {
		opts.Progress, opts.TTY = stderr, isTerminal(stderr)
	}
	eng := pipeline.New(cfg, opts)
	if *dry || *explain {
		plan, err := eng.Plan(ctx)
		if err != nil {
			return err
		}
		printPlan(stdout, cfg, plan, *explain)
		return nil
	}
	env, err := dist.FromEnv()
	if err != nil {
		return err
	}
	if env.Distributed() && env.Rank != 0 {
		return stages.Follow(ctx, env, log.With(slog.Int("rank", env.Rank))) // rank 0 runs the engine
	}
	log.Info("pipeline", slog.String("config", cfg.File), slog.String("workdir", cfg.Workdir))
	start := time.Now()
	if env.Distributed() {
		dp, err := stages.JoinDataParallel(ctx, env, log)
		if err != nil {
			return err
		}
		ctx = stages.WithDataParallel(ctx, dp)
		defer func() { err = errors.Join(err, dp.Finish(ctx, err)) }()
	}
	results, err := eng.Run(ctx)
	printSummary(stdout, results, time.Since(start))
	if err == nil && sl.merge {
		err = stages.RemoveStaging(cfg.Workdir)
	}
	return err
}

func printPlan(w io.Writer, cfg *pipeline.Config, plan []pipeline.Step, explain bool) {
	fmt.Fprintf(w, "plan for %s (workdir %s)\n", cfg.File, cfg.Workdir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tKIND\tACTION\tWHY")
	for _, s := range plan {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Stage, s.Kind, s.Action, strings.Join(s.Reasons, "; "))
	}
	tw.Flush()
	if !explain {
		return
	}
	for _, s := range plan {
		fmt.Fprintf(w, "\n== %s (%s)\n", s.Stage, s.Kind)
		if s.Key == "" {
			fmt.Fprintln(w, "key: not known yet (a stage it needs runs first)")
			continue
		}
		fmt.Fprintf(w, "key: %s\n", s.Key)
		b, _ := json.MarshalIndent(s.Parts, "", "  ")
		fmt.Fprintln(w, string(b))
		if st := cfg.Stage(s.Stage); st != nil {
			var out []string
			for _, sp := range st.Kind.Params {
				if sp.NoKey && st.Params.Has(sp.Name) {
					out = append(out, fmt.Sprintf("%s=%v", sp.Name, st.Params[sp.Name]))
				}
			}
			if len(out) > 0 {
				fmt.Fprintf(w, "not in the key: %s\n", strings.Join(out, " "))
			}
		}
	}
}

func printSummary(w io.Writer, results []pipeline.Result, took time.Duration) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tKIND\tRESULT\tTOOK\tWHY")
	for _, r := range results {
		state := "ran"
		switch {
		case r.Err != nil:
			state = "FAILED"
		case r.Action == pipeline.ActSkip:
			state = "up to date"
		}
		took := "-"
		if r.Action == pipeline.ActRun {
			took = r.Duration.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Stage, r.Kind, state, took, strings.Join(r.Reasons, "; "))
	}
	tw.Flush()
	for _, r := range results {
		for _, line := range r.Reports {
			fmt.Fprintf(w, "  %s: %s\n", r.Stage, line)
		}
	}
	fmt.Fprintf(w, "total %s\n", took.Round(10*time.Millisecond))
}
