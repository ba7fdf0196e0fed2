package dist

import (
	"bytes"
	"context"
	"crypto/rand"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/dist/disttest"
)

// TestRendezvousProcesses: N processes meet over TCP; rank 0's id reaches
// every rank, and the control channel sums in rank order.
func TestRendezvousProcesses(t *testing.T) {
	const world = 3
	port := disttest.FreePort(t)
	disttest.Ranks(t, world, "TestRendezvousRank", "", func(r int) []string {
		return disttest.TorchrunEnv(r, world, port-1)
	})
}

func TestRendezvousRank(t *testing.T) {
	if disttest.Rank() < 0 {
		t.Skip("a rank of TestRendezvousProcesses")
	}
	env, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	var made UniqueID
	newID := func() (UniqueID, error) {
		_, err := rand.Read(made.Internal[:])
		return made, err
	}
	ctl, id, err := Rendezvous(context.Background(), env, 20*time.Second, newID)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	// every rank checks it has rank 0's id
	got, err := ctl.Broadcast(id.Internal[:])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, id.Internal[:]) || (env.Rank == 0 && id != made) || id == (UniqueID{}) {
		t.Fatalf("rank %d has another NCCL id than rank 0", env.Rank)
	}
	sum, err := ctl.SumFloat64([]float64{float64(env.Rank + 1), 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if sum[0] != 6 || math.Abs(sum[1]-0.3) > 1e-15 {
		t.Fatalf("sum %v, want [6 0.3]", sum)
	}
}

// TestRendezvousTimeout: a rank whose rank 0 never comes says so.
func TestRendezvousTimeout(t *testing.T) {
	env := Env{Rank: 1, World: 2, Addr: "127.0.0.1", Port: disttest.FreePort(t), Launcher: "torchrun"}
	_, _, err := Rendezvous(context.Background(), env, 300*time.Millisecond, nil)
	if err == nil {
		t.Fatal("no error")
	}
	t.Log(err)
}

// TestNCCLStandinProcesses: N processes through the NCCL binding on the
// stand-in libnccl (ncclCommInitRank's id by value, else the stand-in
// refuses it): the bucketed all-reduce averages, the broadcast copies
// rank 0's values.
func TestNCCLStandinProcesses(t *testing.T) {
	const world = 3
	lib := disttest.BuildStandin(t)
	port := disttest.FreePort(t)
	disttest.Ranks(t, world, "TestNCCLStandinRank", lib, func(r int) []string {
		return append(disttest.TorchrunEnv(r, world, port-1), BucketEnv+"=0.0001") // 104-byte buckets
	})
}

// TestNCCLStandinUnderMpirun is TestNCCLStandinProcesses launched by
// mpirun -np 2 (Open MPI's variables).
func TestNCCLStandinUnderMpirun(t *testing.T) {
	lib := disttest.BuildStandin(t)
	disttest.Mpirun(t, 2, "TestNCCLStandinRank", lib, []string{PortEnv + "=" + strconv.Itoa(disttest.FreePort(t)), BucketEnv + "=0.0001"})
}

func TestNCCLStandinRank(t *testing.T) {
	if disttest.Rank() < 0 {
		t.Skip("a rank of TestNCCLStandinProcesses")
	}
	env, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Join(context.Background(), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := g.Close(); err != nil {
			t.Error(err)
		}
	}()
	if err := g.Open(HostMemory{}); err != nil {
		t.Fatal(err)
	}
	sizes := []int{5, 30, 1, 70000, 7} // one gradient above the stand-in's chunk
	grads := make([][]float32, len(sizes))
	for i, n := range sizes {
		grads[i] = make([]float32, n)
		for j := range grads[i] {
			grads[i][j] = float32((env.Rank+1)*(i+1)) + float32(j%7)
		}
	}
	red, err := g.NewReducer(sizes)
	if err != nil {
		t.Fatal(err)
	}
	world := float32(env.World)
	if len(red.Buckets()) < 3 {
		t.Fatalf("buckets %v: want several", red.Buckets())
	}
	for range 2 { // the reducer is reused step after step
		for i := range grads {
			for j := range grads[i] {
				grads[i][j] = float32((env.Rank+1)*(i+1)) + float32(j%7)
			}
		}
		if err := red.ReduceHost(grads); err != nil {
			t.Fatal(err)
		}
		for i := range grads {
			for j, v := range grads[i] {
				// mean over ranks of (r+1)(i+1) + j%7 = (W+1)/2 (i+1) + j%7
				if want := (world+1)/2*float32(i+1) + float32(j%7); v != want {
					t.Fatalf("gradient %d[%d] = %v, want %v", i, j, v, want)
				}
			}
		}
	}
	params := [][]float32{{float32(env.Rank), 1}, make([]float32, 70000)}
	params[1][69999] = float32(env.Rank + 5)
	if err := g.BroadcastParams(params); err != nil {
		t.Fatal(err)
	}
	if params[0][0] != 0 || params[1][69999] != 5 {
		t.Fatalf("after the broadcast: %v, %v; want rank 0's 0, 5", params[0][0], params[1][69999])
	}
	m, err := g.Mean(float64(env.Rank))
	if want := float64(env.World-1) / 2; err != nil || m != want {
		t.Fatalf("mean of the ranks %v (%v), want %v", m, err, want)
	}
	if env.World < 2 {
		t.Fatalf("world size %d", env.World)
	}
}

// TestMissingNCCL: world size 1 needs no libnccl; above 1 a missing one
// is a clear error.
func TestMissingNCCL(t *testing.T) {
	t.Setenv("PIPELINE_CUDA_LIBRARY_PATH", t.TempDir())
	g, err := Join(context.Background(), Env{World: 1}, nil)
	if err != nil || g.NCCL() {
		t.Fatalf("world size 1: %v, NCCL %v", err, g != nil && g.NCCL())
	}
	g.Close()
	if _, err := loadNCCL(); err != nil {
		t.Logf("world size 2 would fail with: %v", err)
	} else {
		t.Skip("a libnccl is installed here")
	}
	_, err = Join(context.Background(), Env{Rank: 1, World: 2, Addr: "127.0.0.1", Port: 1}, nil)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("needs NCCL")) {
		t.Fatalf("error %v, want one saying NCCL is needed", err)
	}
}
