package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/stages"
)

// sliceFlags are run's Kubernetes Indexed Job flags: --shard I --num-shards
// N runs one slice of a frames stage's videos into the staging folder;
// --merge checks that every slice finished and runs the config, adopting
// the slices' work.
type sliceFlags struct {
	index, count int
	merge        bool
}

func (s *sliceFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&s.index, "shard", -1, "with --num-shards: run slice `I` (0-based; $JOB_COMPLETION_INDEX) of the --stage frames stage's videos into the staging folder")
	fs.IntVar(&s.count, "num-shards", 0, "with --shard: the number `N` of slices")
	fs.BoolVar(&s.merge, "merge", false, "after every slice finished: check they cover every video once, then run as usual, adopting their work")
}

// sliceStage returns the stage a slice or a merge is about: the one
// --stage, or "" (the config's only frames stage).
func sliceStage(only []string) (string, error) {
	switch len(only) {
	case 0:
		return "", nil
	case 1:
		return only[0], nil
	}
	return "", &pipeline.UsageError{Msg: "--shard/--num-shards/--merge take one --stage (a frames stage or its ingest stage)"}
}

func runSlice(ctx context.Context, cfg *pipeline.Config, only []string, sl sliceFlags, stdout io.Writer) error {
	if sl.merge {
		return &pipeline.UsageError{Msg: "--merge runs after the slices, not with --shard"}
	}
	stage, err := sliceStage(only)
	if err != nil {
		return err
	}
	rec, err := stages.RunSlice(ctx, cfg, stage, sl.index, sl.count)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "slice %d of %d of %s: %d videos (%d ok, %d quarantined), %d extracted, %d already staged\n",
		rec.Index, rec.Count, rec.Stage, len(rec.Paths), rec.OK, rec.Quarantined, rec.Extracted, rec.Cached)
	return nil
}

func checkMerge(ctx context.Context, cfg *pipeline.Config, only []string) error {
	stage, err := sliceStage(only)
	if err != nil {
		return err
	}
	_, err = stages.CheckSlices(ctx, cfg, stage)
	return err
}
