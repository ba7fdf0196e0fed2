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

// dpSDYAML is the SD recipe at CI size (the tiny SD model; MODEL is its
// folder): train_sd with a global batch of 2.
const dpSDYAML = `workdir: w
stages:
  synth:
    kind: synth
    params: {count: 3, width: 96, height: 64, fps: 6, seconds: 5, seed: 11}
  ingest:
    kind: ingest
    needs: [synth]
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 64}
  pack:
    kind: pack
    needs: [frames]
    params: {val_fraction: 0.34}
  latents:
    kind: latents
    needs: [pack, frames]
    params: {model: MODEL, prompt: "clouds", batch: 8}
  train:
    kind: train_sd
    needs: [latents]
    params: {model: MODEL, frames_length: 4, batch: 2, steps: 3, checkpoint_every: 2, val_batches: 1, lr: 1.0e-3, caption_dropout: 0.5}
`

// TestRunStageTrainSDUnderTorchrun: "pipeline run CONFIG --stage train"
// of the SD recipe as two ranks with torchrun's variables (the stand-in
// libnccl): rank 1 follows rank 0's train_sd stage, one clip each; the
// temporal weights equal a one-process run's.
func TestRunStageTrainSDUnderTorchrun(t *testing.T) {
	model, err := filepath.Abs("../../configs/testdata/sd15-tiny")
	if err != nil {
		t.Fatal(err)
	}
	runTwoRanks(t, strings.ReplaceAll(dpSDYAML, "MODEL", model), "train")
}

// TestRunStageTrainUnderTorchrun: "pipeline run CONFIG --stage train" as two
// ranks with torchrun's variables (the stand-in libnccl): rank 0 runs the
// engine, rank 1 follows its pretrain and train stages; the weights equal
// a one-process run's.
func TestRunStageTrainUnderTorchrun(t *testing.T) {
	runTwoRanks(t, dpYAML, "pretrain", "train")
}

// runTwoRanks runs "pipeline run --stage train" of yaml as one process and
// as two ranks, and compares the weights of the training stages.
func runTwoRanks(t *testing.T, yaml string, trainStages ...string) {
	if testing.Short() {
		t.Skip("runs the pipeline three times")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed")
	}
	lib := disttest.BuildStandin(t)
	one, two := t.TempDir(), t.TempDir()
	for _, d := range []string{one, two} {
		if err := os.WriteFile(filepath.Join(d, "p.yaml"), []byte(yaml), 0o644); err != nil {
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
	for _, st := range trainStages {
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
