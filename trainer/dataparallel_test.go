package trainer

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/dist"
	"github.com/timelapse-ml/pipeline/trainer/dist/disttest"
)

// Environment of the ranks started by the data-parallel tests.
const (
	dpShardsEnv   = "DPTEST_SHARDS"
	dpBackboneEnv = "DPTEST_BACKBONE"
	dpOutEnv      = "DPTEST_OUT"   // rank 0's output folder (and the others' unless DPTEST_OTHER)
	dpOtherEnv    = "DPTEST_OTHER" // when set, rank r > 0 writes into DPTEST_OTHER/r
	dpStopEnv     = "DPTEST_STOP"  // interrupt rank 1 (only) after this step
	dpGradsEnv    = "DPTEST_GRADS" // write step 1's averaged gradients to this folder
)

const dpSteps = 4

// dpOpts is the training of the data-parallel tests: a global batch of 4.
func dpOpts(t *testing.T, shardsDir, backbone, out string) TrainOptions {
	c := tinyCommon(t, shardsDir, dpSteps)
	c.Batch, c.OutDir, c.CheckpointEvery, c.ValidateEvery = 4, out, 2, 2
	c.WeightDecay = 0.01
	return TrainOptions{Common: c, Backbone: backbone, FramesLength: 4}
}

// TestTrainDataParallelMatchesOneProcess: two processes (torchrun's
// variables, then mpirun -np 2's where installed) train data-parallel through the binding and the stand-in
// libnccl, each on its half of the global batch of 4. Their averaged
// gradients at step 1 are the same on both ranks and equal one process's
// on the whole batch, as are the final weights; only rank 0 writes. Then a
// run of two ranks interrupted after step 2 resumes as one process and
// ends where the straight run ends (the interrupt reached rank 1 only:
// both stop after step 2 and rank 0 writes the checkpoint).
func TestTrainDataParallelMatchesOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	shardsDir, bb := pretrained(t)
	lib := disttest.BuildStandin(t)

	one := dpOpts(t, shardsDir, bb, t.TempDir())
	var oneGrads [][]float32
	one.afterStep = func(s *session, step int) {
		if step == 1 {
			for _, g := range s.be.grads() {
				oneGrads = append(oneGrads, append([]float32(nil), g...))
			}
		}
	}
	if _, err := Train(context.Background(), one); err != nil {
		t.Fatal(err)
	}

	const world = 2
	common := func(out, other string, extra ...string) []string {
		return append([]string{dpShardsEnv + "=" + shardsDir, dpBackboneEnv + "=" + bb, dpOutEnv + "=" + out, dpOtherEnv + "=" + other}, extra...)
	}
	// check launches two ranks through launch and compares them with the
	// one process
	check := func(t *testing.T, launch func(env []string)) {
		out, other, grads := t.TempDir(), t.TempDir(), t.TempDir()
		launch(common(out, other, dpGradsEnv+"="+grads))
		if t.Failed() {
			return
		}
		var rankGrads [world][][]float32
		for r := range world {
			rankGrads[r] = readGrads(t, filepath.Join(grads, strconv.Itoa(r)), oneGrads)
		}
		for i := range oneGrads {
			for j := range oneGrads[i] {
				a, b := rankGrads[0][i][j], rankGrads[1][i][j]
				if math.Float32bits(a) != math.Float32bits(b) {
					t.Fatalf("gradient %d[%d]: rank 0 %v, rank 1 %v", i, j, a, b)
				}
				if !close32(a, oneGrads[i][j], 1e-4, 1e-7) {
					t.Fatalf("gradient %d[%d]: averaged %v, one process %v", i, j, a, oneGrads[i][j])
				}
			}
		}
		sameWeights(t, filepath.Join(one.OutDir, TemporalFile), filepath.Join(out, TemporalFile))
		for _, f := range []string{TrainStateFile, MetricsFile, LossPlotFile, SummaryFile} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("rank 0 did not write %s: %v", f, err)
			}
		}
		if left, _ := os.ReadDir(filepath.Join(other, "1")); len(left) != 0 {
			t.Errorf("rank 1 wrote %d files in its output folder", len(left))
		}
	}
	t.Run("torchrun", func(t *testing.T) {
		check(t, func(env []string) {
			port := disttest.FreePort(t)
			disttest.Ranks(t, world, "TestTrainDataParallelRank", lib, func(r int) []string {
				return append(disttest.TorchrunEnv(r, world, port-1), env...)
			})
		})
	})
	t.Run("mpirun", func(t *testing.T) {
		check(t, func(env []string) {
			env = append(env, dist.PortEnv+"="+strconv.Itoa(disttest.FreePort(t)))
			disttest.Mpirun(t, world, "TestTrainDataParallelRank", lib, env)
		})
	})
	if t.Failed() {
		return
	}

	// two ranks sharing the output folder, interrupted after step 2 ...
	out := t.TempDir()
	port := disttest.FreePort(t)
	disttest.Ranks(t, world, "TestTrainDataParallelRank", lib, func(r int) []string {
		return append(disttest.TorchrunEnv(r, world, port-1), common(out, "", dpStopEnv+"=2")...)
	})
	if t.Failed() {
		return
	}
	// ... resumed as one process
	resumed := dpOpts(t, shardsDir, bb, out)
	resumed.Resume = true
	res, err := Train(context.Background(), resumed)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResumedFrom != 2 || res.Steps != dpSteps {
		t.Fatalf("resumed from %d to %d, want 2 to %d", res.ResumedFrom, res.Steps, dpSteps)
	}
	sameWeights(t, filepath.Join(one.OutDir, TemporalFile), filepath.Join(out, TemporalFile))
}

// TestTrainDataParallelRank is one rank of TestTrainDataParallelMatchesOneProcess.
func TestTrainDataParallelRank(t *testing.T) {
	if disttest.Rank() < 0 {
		t.Skip("a rank of TestTrainDataParallelMatchesOneProcess")
	}
	env, g, ctx, cancel, out := joinTestRank(t)
	defer cancel()
	o := dpOpts(t, os.Getenv(dpShardsEnv), os.Getenv(dpBackboneEnv), out)
	o.Dist = g
	o.SampleEvery = 2 // rank 0 alone writes previews
	stop, _ := strconv.Atoi(os.Getenv(dpStopEnv))
	o.afterStep = func(s *session, step int) {
		if s.dp == nil || s.shape.B != 2 || !g.NCCL() {
			t.Fatalf("rank %d steps on %d clips (data-parallel %v, NCCL %v), want its 2 of the global 4", env.Rank, s.shape.B, s.dp != nil, g.NCCL())
		}
		if dir := os.Getenv(dpGradsEnv); dir != "" && step == 1 {
			writeGrads(t, filepath.Join(dir, strconv.Itoa(env.Rank)), s.be.grads())
		}
		if step == stop && env.Rank == 1 {
			cancel()
		}
	}
	res, err := Train(ctx, o)
	if stop > 0 && errors.Is(err, context.Canceled) {
		if res.Steps != stop {
			t.Fatalf("rank %d stopped after step %d, want %d", env.Rank, res.Steps, stop)
		}
		return
	}
	if stop > 0 {
		t.Fatalf("rank %d: %v, want context.Canceled after step %d", env.Rank, err, stop)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// joinTestRank is the start of a test rank: its place in the job, the
// group (closed at the test's end), a context the test cancels to
// interrupt it, and its output folder (DPTEST_OUT, or DPTEST_OTHER/rank),
// created.
func joinTestRank(t *testing.T) (dist.Env, *dist.Group, context.Context, context.CancelFunc, string) {
	env, err := dist.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := dist.Join(ctx, env, testLog(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	out := os.Getenv(dpOutEnv)
	if other := os.Getenv(dpOtherEnv); other != "" && env.Rank > 0 {
		out = filepath.Join(other, strconv.Itoa(env.Rank))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		cancel()
		t.Fatal(err)
	}
	return env, g, ctx, cancel, out
}

func writeGrads(t *testing.T, path string, grads [][]float32) {
	var b []byte
	for _, g := range grads {
		for _, v := range g {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readGrads reads gradients shaped like like.
func readGrads(t *testing.T, path string, like [][]float32) [][]float32 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]float32
	for _, l := range like {
		g := make([]float32, len(l))
		for j := range g {
			if len(b) < 4 {
				t.Fatalf("%s: too short", path)
			}
			g[j] = math.Float32frombits(binary.LittleEndian.Uint32(b))
			b = b[4:]
		}
		out = append(out, g)
	}
	return out
}

func close32(a, b float32, rel, abs float64) bool {
	d := math.Abs(float64(a) - float64(b))
	return d <= abs || d <= rel*math.Max(math.Abs(float64(a)), math.Abs(float64(b)))
}

// sameWeights compares two temporal files to float tolerance.
func sameWeights(t *testing.T, want, got string) {
	t.Helper()
	sameWeightsTol(t, want, got, 1e-6)
}

// sameWeightsTol compares two temporal files to a relative tolerance of
// 1e-4 or an absolute one of abs.
func sameWeightsTol(t *testing.T, want, got string, abs float64) {
	t.Helper()
	a, b := readTensors(t, want), readTensors(t, got)
	if len(a.Tensors) == 0 || len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d vs %d tensors", len(a.Tensors), len(b.Tensors))
	}
	worst := 0.0
	for name, ta := range a.Tensors {
		tb, ok := b.Tensors[name]
		if !ok {
			t.Fatalf("%s lacks %s", got, name)
		}
		for i := range ta.Data {
			if !close32(ta.Data[i], tb.Data[i], 1e-4, abs) {
				t.Fatalf("%s[%d]: one process %v, data-parallel %v", name, i, ta.Data[i], tb.Data[i])
			}
			worst = math.Max(worst, math.Abs(float64(ta.Data[i])-float64(tb.Data[i])))
		}
	}
	t.Logf("largest weight difference from one process: %.3g", worst)
}
