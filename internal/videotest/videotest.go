// Package videotest makes the small folder of videos, and the config over
// it, that the tests of the runners compare against the local engine
// (stages' slices and buckets, cmd/pipeline-beam/beamrun's prism and portable paths).
package videotest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/timelapse-ml/pipeline/synth"
)

// Folder writes three tiny videos (a.mp4, b.mp4, c.mp4; seed picks their
// scenes), a copy of b (a duplicate) and a file that is not a video into a
// new folder: 5 files, 3 usable.
func Folder(t testing.TB, seed int64) string {
	t.Helper()
	dir := t.TempDir()
	for i, name := range []string{"a.mp4", "b.mp4", "c.mp4"} {
		spec := synth.Spec{Width: 96, Height: 64, FPS: 10, Seconds: 5.5, FrozenHead: 2, FrozenTail: 2, Seed: seed + int64(i)}
		if err := synth.Render(context.Background(), spec, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "b.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"b-copy.mp4": data, "broken.mp4": []byte("not a video")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Config is the stages of a config (no workdir) that ingest the folder
// (a path or a bucket location), extract 32 px frames and pack them.
func Config(folder string) string {
	return `stages:
  ingest:
    kind: ingest
    params: {folder: "` + folder + `"}
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 32, workers: 1}
  pack:
    kind: pack
    needs: [frames]
    params: {shard_mb: 1, val_fraction: 0.34}
`
}
