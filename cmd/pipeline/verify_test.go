package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyExitsOneOnAChangedOutput(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(cfg, []byte("workdir: work\nstages:\n  videos:\n    kind: synth\n    params: {count: 2, width: 64, height: 48, fps: 4, seconds: 6}\n  ingest:\n    kind: ingest\n    needs: [videos]\n"), 0o644)
	if code, _, stderr := runCLI(t, "run", cfg, "-quiet"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	if code, out, stderr := runCLI(t, "verify", cfg); code != 0 || !strings.Contains(out, "ok: ") {
		t.Fatalf("verify of untouched outputs: exit %d\n%s%s", code, out, stderr)
	}
	manifest := filepath.Join(dir, "work", "ingest", "manifest.jsonl")
	b, _ := os.ReadFile(manifest)
	b[3] ^= 1
	os.WriteFile(manifest, b, 0o644)
	code, out, _ := runCLI(t, "verify", cfg)
	if code != exitFailed || strings.Count(out, "\n") != 1 || !strings.Contains(out, "ingest: "+filepath.Join("ingest", "manifest.jsonl")+": content changed") {
		t.Errorf("verify after a flipped byte: exit %d, output:\n%s", code, out)
	}
}
