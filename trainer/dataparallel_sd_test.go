package trainer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/timelapse-ml/pipeline/internal/testenv"
	"github.com/timelapse-ml/pipeline/trainer/dist/disttest"
)

// dpSDOpts is the SD training of the data-parallel tests: the tiny SD
// model, a global batch of 6 clips (the 6 training windows of the
// latents), caption dropout on, 4 steps.
func dpSDOpts(t *testing.T, latents, out string) SDTrainOptions {
	o := sdTrainOpts(t, latents, dpSteps)
	o.Batch, o.OutDir, o.CheckpointEvery, o.ValidateEvery = 6, out, 2, 2
	return o
}

// TestTrainSDDataParallelMatchesOneProcess: train_sd on 2 and on 3
// processes (torchrun's variables) through the binding and the stand-in
// libnccl, each on its slice of the global batch of 6 (its latents drawn
// as one process draws them, caption dropout and noise too): the averaged
// gradients of step 1 are bit for bit the same on every rank and equal
// one process's on the whole batch, as are the final temporal weights;
// only rank 0 writes (checkpoints, metrics, previews, the video model).
// Then 3 ranks interrupted after step 2 resume as 2 ranks and end where
// the one process ends.
func TestTrainSDDataParallelMatchesOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	testenv.SkipUnderRace(t)
	latents := writeSDLatents(t, 3, 5)
	lib := disttest.BuildStandin(t)

	one := dpSDOpts(t, latents, t.TempDir())
	var oneGrads [][]float32
	one.afterStep = func(s *session, step int) {
		if step == 1 {
			for _, g := range s.be.grads() {
				oneGrads = append(oneGrads, append([]float32(nil), g...))
			}
		}
	}
	if _, err := TrainSD(context.Background(), one); err != nil {
		t.Fatal(err)
	}
	ranks := func(world int, out, other string, extra ...string) {
		port := disttest.FreePort(t)
		disttest.Ranks(t, world, "TestTrainSDDataParallelRank", lib, func(r int) []string {
			env := append(disttest.TorchrunEnv(r, world, port-1), dpShardsEnv+"="+latents, dpOutEnv+"="+out, dpOtherEnv+"="+other)
			return append(env, extra...)
		})
	}
	for _, world := range []int{2, 3} {
		t.Run("world"+strconv.Itoa(world), func(t *testing.T) {
			out, other, grads := t.TempDir(), t.TempDir(), t.TempDir()
			ranks(world, out, other, dpGradsEnv+"="+grads)
			if t.Failed() {
				return
			}
			rank0 := readGrads(t, filepath.Join(grads, "0"), oneGrads)
			for r := 1; r < world; r++ {
				sameTensorsBits(t, r, rank0, readGrads(t, filepath.Join(grads, strconv.Itoa(r)), oneGrads))
			}
			for i := range oneGrads {
				for j := range oneGrads[i] {
					if !close32(rank0[i][j], oneGrads[i][j], 1e-4, 1e-7) {
						t.Fatalf("gradient %d[%d]: averaged %v, one process %v", i, j, rank0[i][j], oneGrads[i][j])
					}
				}
			}
			sameWeightsSD(t, one, filepath.Join(out, TemporalFile))
			for _, f := range []string{TrainStateFile, MetricsFile, LossPlotFile, SummaryFile, VideoModelDir, "previews"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("rank 0 did not write %s: %v", f, err)
				}
			}
			for r := 1; r < world; r++ {
				if left, _ := os.ReadDir(filepath.Join(other, strconv.Itoa(r))); len(left) != 0 {
					t.Errorf("rank %d wrote %d files in its output folder", r, len(left))
				}
			}
		})
	}
	if t.Failed() {
		return
	}
	out := t.TempDir()
	ranks(3, out, "", dpStopEnv+"=2")
	if t.Failed() {
		return
	}
	ranks(2, out, "", dpResumeEnv+"=1")
	if t.Failed() {
		return
	}
	sameWeightsSD(t, one, filepath.Join(out, TemporalFile))
}

// sameWeightsSD compares the temporal weights with one process's to float
// tolerance: AdamW turns the rounding of a sum over 3 ranks instead of 6
// clips into differences of up to a few thousandths of a step's size where
// a gradient is near zero (the zero-initialised temporal output
// projections), so the absolute tolerance is 1% of the learning rate.
func sameWeightsSD(t *testing.T, one SDTrainOptions, got string) {
	t.Helper()
	sameWeightsTol(t, filepath.Join(one.OutDir, TemporalFile), got, 0.01*one.LR)
}

// dpResumeEnv makes a rank resume from the shared output folder.
const dpResumeEnv = "DPTEST_RESUME"

// TestTrainSDDataParallelRank is one rank of TestTrainSDDataParallelMatchesOneProcess.
func TestTrainSDDataParallelRank(t *testing.T) {
	if disttest.Rank() < 0 {
		t.Skip("a rank of TestTrainSDDataParallelMatchesOneProcess")
	}
	env, g, ctx, cancel, out := joinTestRank(t)
	defer cancel()
	o := dpSDOpts(t, os.Getenv(dpShardsEnv), out)
	o.Dist, o.SampleEvery = g, 2
	o.Resume = os.Getenv(dpResumeEnv) == "1"
	stop, _ := strconv.Atoi(os.Getenv(dpStopEnv))
	want := 6 / env.World
	o.afterStep = func(s *session, step int) {
		if s.dp == nil || s.shape.B != want || !g.NCCL() {
			t.Fatalf("rank %d steps on %d clips (data-parallel %v, NCCL %v), want its %d of the global 6", env.Rank, s.shape.B, s.dp != nil, g.NCCL(), want)
		}
		if dir := os.Getenv(dpGradsEnv); dir != "" && step == 1 {
			writeGrads(t, filepath.Join(dir, strconv.Itoa(env.Rank)), s.be.grads())
		}
		if step == stop && env.Rank == 1 {
			cancel()
		}
	}
	res, err := TrainSD(ctx, o)
	if stop > 0 {
		if !errors.Is(err, context.Canceled) || res.Steps != stop {
			t.Fatalf("rank %d: %v after step %d, want context.Canceled after step %d", env.Rank, err, res.Steps, stop)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if o.Resume && res.ResumedFrom != 2 {
		t.Fatalf("rank %d resumed from step %d, want 2", env.Rank, res.ResumedFrom)
	}
}

// sameTensorsBits fails unless rank r's gradients are rank 0's bit for bit.
func sameTensorsBits(t *testing.T, r int, want, got [][]float32) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if want[i][j] != got[i][j] {
				t.Fatalf("gradient %d[%d]: rank 0 %v, rank %d %v", i, j, want[i][j], r, got[i][j])
			}
		}
	}
}
