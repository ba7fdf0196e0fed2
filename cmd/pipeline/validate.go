package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/timelapse-ml/pipeline/pipeline"
)

func cmdValidate(args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	cfg, err := parseConfig(fs, args)
	if err != nil {
		return err
	}
	var names []string
	for _, s := range cfg.Order() {
		names = append(names, s.Name)
	}
	fmt.Fprintf(stdout, "%s: ok, %d stages: %s\n", cfg.File, len(names), strings.Join(names, " -> "))
	return nil
}

func cmdVerify(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	cfg, err := parseConfig(fs, args)
	if err != nil {
		return err
	}
	rep, err := pipeline.New(cfg, pipeline.Options{}).Verify(ctx)
	if err != nil {
		return err
	}
	for _, f := range rep.Findings {
		fmt.Fprintln(stdout, f)
	}
	for _, st := range rep.Interrupted {
		fmt.Fprintf(stdout, "note: %s was interrupted; its partial outputs are not recorded, so not checked\n", st)
	}
	if len(rep.Findings) > 0 {
		return fmt.Errorf("verify: %d problem(s) in %s", len(rep.Findings), cfg.Workdir)
	}
	if len(rep.Stages) == 0 {
		fmt.Fprintln(stdout, "nothing to verify: no stage has finished")
		return nil
	}
	fmt.Fprintf(stdout, "ok: %d recorded files of %s match; checks passed\n", rep.Files, strings.Join(rep.Stages, ", "))
	return nil
}
