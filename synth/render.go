package synth

import (
	"context"
	"errors"
)

// Render renders the video described by spec to path, atomically (a
// temporary file beside path, renamed on success). The extension of path is
// not checked; use spec.Ext().
func Render(ctx context.Context, spec Spec, path string) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	return errors.New("synth: Render not implemented yet")
}

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}
