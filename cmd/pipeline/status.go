package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/timelapse-ml/pipeline/pipeline"
)

func cmdStatus(args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	cfg, err := parseConfig(fs, args)
	if err != nil {
		return err
	}
	eng := pipeline.New(cfg, pipeline.Options{})
	st, err := eng.Status()
	if err != nil {
		return err
	}
	plan, err := eng.Plan(context.Background())
	if err != nil {
		return err
	}
	next := map[string]pipeline.Step{}
	for _, s := range plan {
		next[s.Stage] = s
	}
	fmt.Fprintf(stdout, "%s (workdir %s)\n", cfg.File, cfg.Workdir)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tKIND\tSTATE\tFINISHED\tFILES\tSIZE\tNEXT RUN")
	for _, s := range st {
		fin := "-"
		if !s.Finished.IsZero() {
			fin = s.Finished.Local().Format(time.DateTime)
		}
		n := next[s.Stage]
		why := string(n.Action)
		if len(n.Reasons) > 0 {
			why += ": " + n.Reasons[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Stage, s.Kind, s.State, fin, s.Outputs, humanBytes(s.Bytes), why)
	}
	tw.Flush()
	for _, s := range st {
		for _, line := range s.Reports {
			fmt.Fprintf(stdout, "  %s: %s\n", s.Stage, line)
		}
		for _, p := range s.Previous {
			fmt.Fprintf(stdout, "  %s: earlier outputs kept in %s\n", s.Stage, p)
		}
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
