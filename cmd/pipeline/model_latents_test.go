package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/shards"
)

// tinySDFolder lays out an SD model folder (vae/, text_encoder/,
// tokenizer/) from the tiny seeded fixtures of trainer/weights and
// trainer/tokenizer (shared/sd-golden, see their PROVENANCE).
func tinySDFolder(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sd")
	os.Mkdir(dir, 0o755)
	for name, src := range map[string]string{
		"vae":          "../../trainer/weights/testdata/sd-tiny/vae",
		"text_encoder": "../../trainer/weights/testdata/sd-tiny/text_encoder",
		"tokenizer":    tokenizerFixture,
	} {
		abs, _ := filepath.Abs(src)
		if err := os.Symlink(abs, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLatentsKillResumeAndVerify SIGKILLs `pipeline run` while the latents
// stage encodes: the next run keeps the shards finished before the kill
// (same file, not rewritten) and encodes the rest; `pipeline verify` then
// passes, and names the shard after a byte of it is flipped.
func TestLatentsKillResumeAndVerify(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte(`workdir: w
stages:
  videos:
    kind: synth
    params: {count: 6, width: 96, height: 64, fps: 6, seconds: 7, seed: 9}
  ingest:
    kind: ingest
    needs: [videos]
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 64}
  pack:
    kind: pack
    needs: [frames]
  latents:
    kind: latents
    needs: [pack]
    params: {model: `+tinySDFolder(t)+`, shard_frames: 14, batch: 1, prompt: "clouds"}
`), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PIPELINE_CLI_CHILD=run --quiet "+cfg)
	var childErr bytes.Buffer
	cmd.Stderr = &childErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "w", "latents")
	finished := func() []string {
		var names []string
		entries, _ := os.ReadDir(out)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "shard-") && !pipeline.IsTemp(e.Name()) {
				names = append(names, e.Name())
			}
		}
		return names
	}
	for deadline := time.Now().Add(60 * time.Second); len(finished()) == 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no latent shard after 60 s: %s", childErr.String())
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	before := map[string]os.FileInfo{}
	for _, n := range finished() {
		st, _ := os.Stat(filepath.Join(out, n))
		before[n] = st
	}
	if _, err := os.Stat(filepath.Join(out, shards.IndexFile)); err == nil {
		t.Skip("the run finished before the kill; nothing to resume")
	}
	if code, _, stderr := runCLI(t, "run", "--quiet", cfg); code != 0 {
		t.Fatalf("resumed run: exit %d: %s", code, stderr)
	}
	ix, err := shards.ReadLatentIndex(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Shards) != 6 || len(before) >= 6 {
		t.Fatalf("%d shards, %d finished before the kill", len(ix.Shards), len(before))
	}
	t.Logf("%d of %d shards finished before the kill", len(before), len(ix.Shards))
	for n, st := range before {
		now, err := os.Stat(filepath.Join(out, n))
		if err != nil || !os.SameFile(st, now) || !now.ModTime().Equal(st.ModTime()) {
			t.Errorf("%s was rewritten after the kill", n)
		}
	}
	if code, stdout, stderr := runCLI(t, "verify", cfg); code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, stdout, stderr)
	}
	shard := filepath.Join(out, shards.ShardName(2))
	b, _ := os.ReadFile(shard)
	b[len(b)/2] ^= 1
	os.WriteFile(shard, b, 0o644)
	code, stdout, stderr := runCLI(t, "verify", cfg)
	if code == 0 || !strings.Contains(stdout+stderr, shards.ShardName(2)) {
		t.Fatalf("verify after a flipped byte: exit %d\n%s%s", code, stdout, stderr)
	}
}
