package stages

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer"
)

// firstFile returns the first file under dir whose name ends in suffix.
func firstFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	found := ""
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && found == "" && !d.IsDir() && strings.HasSuffix(p, suffix) {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no *%s under %s", suffix, dir)
	}
	return found
}

// flipByte inverts one byte in the middle of path and returns a func that
// restores it.
func flipByte(t *testing.T, path string) func() {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := len(b) / 2
	b[i] ^= 0xff
	os.WriteFile(path, b, 0o644)
	return func() {
		b[i] ^= 0xff
		os.WriteFile(path, b, 0o644)
	}
}

// TestVerifyFindsOneFlippedByte flips one byte of a frame JPEG, of
// manifest.jsonl, of a shard and of temporal.safetensors in turn: verify
// reports that file (and nothing passes), and once restored reports nothing.
func TestVerifyFindsOneFlippedByte(t *testing.T) {
	p := pipelinetest.New(t, All(), trainingYAML)
	p.Run(pipeline.Options{Stages: []string{"train"}})
	eng := pipeline.New(p.Config, pipeline.Options{})
	rep, err := eng.Verify(t.Context())
	if err != nil || len(rep.Findings) != 0 {
		t.Fatalf("untouched outputs: %v %v", rep.Findings, err)
	}
	if len(rep.Stages) != 6 || rep.Files < 20 {
		t.Errorf("checked %v, %d files; want the 6 stages up to train", rep.Stages, rep.Files)
	}
	for _, victim := range []string{
		firstFile(t, p.Dir("frames"), ".jpg"),
		filepath.Join(p.Dir("ingest"), ingest.ManifestFile),
		filepath.Join(p.Dir("pack"), shards.ShardName(0)),
		filepath.Join(p.Dir("train"), trainer.TemporalFile),
	} {
		restore := flipByte(t, victim)
		rep, err := eng.Verify(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(p.Workdir, victim)
		named := false
		for _, f := range rep.Findings {
			named = named || (f.File == rel && strings.Contains(f.Problem, "content changed"))
		}
		if !named {
			t.Errorf("flipped a byte of %s: findings %v", rel, rep.Findings)
		}
		restore()
	}
	if rep, err := eng.Verify(t.Context()); err != nil || len(rep.Findings) != 0 {
		t.Errorf("restored outputs: %v %v", rep.Findings, err)
	}
	// A broken safetensors header also fails train's own check.
	temporal := filepath.Join(p.Dir("train"), trainer.TemporalFile)
	b := pipelinetest.ReadFile(t, temporal)
	b[9] = 0
	os.WriteFile(temporal, b, 0o644)
	rep, err = eng.Verify(t.Context())
	if err != nil || len(rep.Findings) != 2 || !strings.Contains(rep.Findings[1].Problem, "check of kind train failed") {
		t.Errorf("broken header: %v %v", rep.Findings, err)
	}
}
