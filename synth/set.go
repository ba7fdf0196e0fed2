package synth

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
)

// Set is a collection of Count videos sharing one Spec; video i gets the seed
// VideoSeed(Spec.Seed, i). Faults adds the fault files of WriteFaults.
type Set struct {
	Count int
	Spec
	Faults bool
	// Workers is how many videos render at once (0 means DefaultWorkers).
	Workers int
}

// DefaultWorkers is how many videos render at once by default. Each render
// already spreads its rows over all cores and overlaps with its ffmpeg; a
// second video in flight fills the gaps (per-frame hand-offs, ffmpeg
// start-up), which matters most for small frames.
const DefaultWorkers = 2

// VideoSeed derives the seed of video i of a set from the set's seed, so
// that videos differ (wind, landscape, clouds) and adding videos leaves the
// existing ones unchanged.
func VideoSeed(setSeed int64, i int) int64 {
	x := uint64(setSeed)*0x9E3779B97F4A7C15 + uint64(i+1)*0xBF58476D1CE4E5B9
	return int64(splitmix(x) >> 1)
}

// VideoName returns the file name of video i of a set: "synth-0000.mp4".
func (s Set) VideoName(i int) string { return fmt.Sprintf("synth-%04d%s", i, s.Spec.Ext()) }

// VideoSpec returns the spec of video i of a set.
func (s Set) VideoSpec(i int) Spec {
	sp := s.Spec
	sp.Seed = VideoSeed(s.Spec.Seed, i)
	return sp
}

// RenderSet renders the set's videos (and fault files when Faults is set)
// into dir, Workers videos at a time, skipping nothing, and returns the paths
// written, videos first.
func RenderSet(ctx context.Context, set Set, dir string) ([]string, error) {
	if set.Count < 0 {
		return nil, fmt.Errorf("synth: count %d is negative", set.Count)
	}
	if err := set.Spec.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	paths := make([]string, set.Count)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cmp.Or(set.Workers, DefaultWorkers))
	for i := range set.Count {
		paths[i] = filepath.Join(dir, set.VideoName(i))
		g.Go(func() error { return Render(gctx, set.VideoSpec(i), paths[i]) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if set.Faults {
		faults, err := WriteFaults(ctx, dir, set.Spec)
		if err != nil {
			return paths, err
		}
		for _, f := range Faults(set.Spec) {
			if _, ok := faults[f.Name]; ok {
				paths = append(paths, filepath.Join(dir, f.Name))
			}
		}
	}
	return paths, nil
}
