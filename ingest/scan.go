package ingest

import (
	"context"
	"runtime"

	"golang.org/x/sync/errgroup"
)

// InspectFunc inspects one file; Inspect with fixed Options, or a cached
// version of it.
type InspectFunc func(ctx context.Context, path string) (Video, error)

// InspectAll inspects paths with up to workers goroutines (0: the CPU
// count), calls done after each, marks duplicates, and returns the rows in
// path order. It stops at the first error (only a cancelled ctx, for
// Inspect).
func InspectAll(ctx context.Context, paths []string, workers int, inspect InspectFunc, done func(Video)) ([]Video, error) {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	out := make([]Video, len(paths))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i, p := range paths {
		g.Go(func() error {
			v, err := inspect(gctx, p)
			if err != nil {
				return err
			}
			out[i] = v
			if done != nil {
				done(v)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return MarkDuplicates(out), nil
}
