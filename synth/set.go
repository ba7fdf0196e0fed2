package synth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Set is a collection of Count videos sharing one Spec; video i gets the seed
// VideoSeed(Spec.Seed, i). Faults adds the fault files of WriteFaults.
type Set struct {
	Count int
	Spec
	Faults bool
}

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
// into dir, skipping nothing, and returns the paths written, videos first.
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
	var paths []string
	for i := 0; i < set.Count; i++ {
		p := filepath.Join(dir, set.VideoName(i))
		if err := Render(ctx, set.VideoSpec(i), p); err != nil {
			return paths, err
		}
		paths = append(paths, p)
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
