package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

const convertUsage = "model convert IN OUT [--config COMPONENT=FILE | --config FOLDER]..."

// cmdModelConvert writes any accepted weights (pickles included) as a
// diffusers-layout folder of safetensors, then opens the result to check it.
func cmdModelConvert(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model convert", flag.ContinueOnError)
	cfg := configFlags{}
	fs.Var(cfg, "config", "override config fields: COMPONENT=FILE.json, or a model FOLDER's configs")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return &pipeline.UsageError{Msg: "usage: pipeline " + convertUsage}
	}
	in, out := pos[0], pos[1]
	m, err := openModel(in, cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := weights.Convert(m, out); err != nil {
		if errors.Is(err, weights.ErrExists) {
			return &pipeline.UsageError{Msg: err.Error()}
		}
		return err
	}
	back, err := weights.Open(out)
	if err != nil {
		return fmt.Errorf("converted folder %s does not read back: %w", out, err)
	}
	defer back.Close()
	for _, n := range m.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	for _, c := range weights.Components {
		if s, ok := back.Components[c]; ok {
			var total int64
			for _, n := range back.ParamCounts(c) {
				total += n
			}
			fmt.Fprintf(stdout, "%s/%s: %d tensors, %s parameters\n", out, c, len(s.Names()), commas(total))
		}
	}
	return nil
}
