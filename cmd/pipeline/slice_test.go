package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/internal/videotest"
)

// The Indexed Job entry point on the command line: two slices, then the
// merge, then verify; a missing slice stops the merge with exit 1, bad
// slice flags exit 2.
func TestSliceAndMergeCommands(t *testing.T) {
	src := videotest.Folder(t, 31)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(cfg, []byte("workdir: work\n"+videotest.Config(src)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "run", cfg, "--shard", "2", "--num-shards", "2"); code != 2 {
		t.Errorf("--shard 2 --num-shards 2: exit %d, %s", code, errOut)
	}
	code, out, errOut := runCLI(t, "run", cfg, "--stage", "frames", "--shard", "0", "--num-shards", "2", "--quiet")
	if code != 0 || !strings.Contains(out, "slice 0 of 2 of frames: 3 videos") {
		t.Fatalf("slice 0: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "run", cfg, "--merge", "--quiet"); code != 1 || !strings.Contains(errOut, "slice(s) 1 of 2 have not finished") {
		t.Errorf("merge with slice 1 missing: exit %d, %s", code, errOut)
	}
	if code, out, errOut := runCLI(t, "run", cfg, "--stage", "ingest", "--shard", "1", "--num-shards", "2", "--quiet"); code != 0 || !strings.Contains(out, "2 videos") {
		t.Fatalf("slice 1: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "run", cfg, "--merge", "--quiet")
	if code != 0 || !strings.Contains(out, "0 extracted, 3 cached") {
		t.Fatalf("merge: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "work", ".staged")); err == nil {
		t.Error("the staging folder is left after the merge")
	}
	if code, out, errOut := runCLI(t, "verify", cfg); code != 0 {
		t.Errorf("verify after the merge: exit %d\n%s%s", code, out, errOut)
	}
}
