package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer"
	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/dist/disttest"
)

// dpYAML trains at CI size; pretrain and train with global batches of 2.
const dpYAML = `workdir: w
stages:
  synth:
    kind: synth
    params: {count: 3, width: 48, height: 32, fps: 6, seconds: 5, seed: 3}
  ingest:
    kind: ingest
    needs: [synth]
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 16}
  pack:
    kind: pack
    needs: [frames]
    params: {val_fraction: 0.34}
  pretrain:
    kind: pretrain
    needs: [pack]
    params: {resolution: 16, batch: 2, steps: 3, cond_gap: 2, checkpoint_every: 2, val_batches: 1, workers: 1}
  train:
    kind: train
    needs: [pack, pretrain]
    params: {resolution: 16, frames_length: 4, batch: 2, steps: 3, checkpoint_every: 2, val_batches: 1, workers: 1}
`

// TestRunStageTrainUnderTorchrun: "pipeline run CONFIG --stage train" as two
// ranks with torchrun's variables (the stand-in libnccl): rank 0 runs the
// engine, rank 1 follows its pretrain and train stages; the weights equal
// a one-process run's.
func TestRunStageTrainUnderTorchrun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline three times")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed")
	}
	lib := disttest.BuildStandin(t)
	one, two := t.TempDir(), t.TempDir()
	for _, d := range []string{one, two} {
		if err := os.WriteFile(filepath.Join(d, "p.yaml"), []byte(dpYAML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(dir string, env ...string) ([]byte, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(append(os.Environ(), "PIPELINE_CLI_CHILD=run "+filepath.Join(dir, "p.yaml")+" --stage train"), env...)
		return cmd.CombinedOutput()
	}
	if out, err := run(one); err != nil {
		t.Fatalf("one process: %v\n%s", err, out)
	}
	port := disttest.FreePort(t)
	var wg sync.WaitGroup
	outs, errs := make([][]byte, 2), make([]error, 2)
	for r := range 2 {
		env := append(disttest.TorchrunEnv(r, 2, port-1), cuda.LibraryPathEnv+"="+lib)
		wg.Go(func() { outs[r], errs[r] = run(two, env...) })
	}
	wg.Wait()
	for r := range 2 {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v\n%s", r, errs[r], outs[r])
		}
	}
	if !strings.Contains(string(outs[1]), "waiting for rank 0") || strings.Contains(string(outs[1]), "STAGE") {
		t.Errorf("rank 1 did not follow rank 0 (or printed a summary):\n%s", outs[1])
	}
	for _, st := range []string{"pretrain", "train"} {
		file := trainer.BackboneFile
		if st == "train" {
			file = trainer.TemporalFile
		}
		a, err := checkpoint.Read(filepath.Join(one, "w", st, file))
		if err != nil {
			t.Fatal(err)
		}
		b, err := checkpoint.Read(filepath.Join(two, "w", st, file))
		if err != nil {
			t.Fatal(err)
		}
		for name, ta := range a.Tensors {
			tb, ok := b.Tensors[name]
			if !ok || len(tb.Data) != len(ta.Data) {
				t.Fatalf("%s: %s missing", st, name)
			}
			for i := range ta.Data {
				if d := math.Abs(float64(ta.Data[i] - tb.Data[i])); d > 1e-5+1e-4*math.Abs(float64(ta.Data[i])) {
					t.Fatalf("%s %s[%d]: one process %v, two ranks %v", st, name, i, ta.Data[i], tb.Data[i])
				}
			}
		}
		if a.Metadata[trainer.MetaStep] != "3" || b.Metadata[trainer.MetaStep] != "3" {
			t.Errorf("%s: steps %s and %s, want 3", st, a.Metadata[trainer.MetaStep], b.Metadata[trainer.MetaStep])
		}
	}
}
