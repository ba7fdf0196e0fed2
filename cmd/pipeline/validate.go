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
	checked, err := pipeline.New(cfg, pipeline.Options{}).Verify(ctx)
	if err != nil {
		return err
	}
	if len(checked) == 0 {
		fmt.Fprintln(stdout, "nothing to verify: no finished stage has a verifier")
		return nil
	}
	fmt.Fprintf(stdout, "verified: %s\n", strings.Join(checked, ", "))
	return nil
}
