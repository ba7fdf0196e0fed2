// Package disttest helps tests of data-parallel training without GPUs: it
// builds the stand-in libnccl (standin_nccl.c: NCCL's signatures on host
// pointers, the ranks of one host summing through shared memory) with gcc,
// and runs a test binary as N ranks with a launcher's variables.
package disttest

import (
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

//go:embed csrc/standin_nccl.c
var standinSource []byte

// RankEnv marks a child process started by Ranks (its value: the rank).
const RankEnv = "DISTTEST_RANK"

// BuildStandin compiles the stand-in into a folder of its own as
// libnccl.so.2 and returns the folder; put it in PIPELINE_CUDA_LIBRARY_PATH.
// It skips the test when gcc is missing.
func BuildStandin(t testing.TB) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc is not installed: the stand-in libnccl cannot be built")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "standin_nccl.c")
	if err := os.WriteFile(src, standinSource, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(gcc, "-shared", "-fPIC", "-O1", "-Wall", "-o", filepath.Join(dir, "libnccl.so.2"), src, "-lpthread", "-lrt").CombinedOutput()
	if err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return dir
}

// FreePort returns a TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TorchrunEnv is what torchrun sets for rank of world (MASTER_PORT is
// masterPort; the rendezvous then uses masterPort+1).
func TorchrunEnv(rank, world, masterPort int) []string {
	return []string{"RANK=" + strconv.Itoa(rank), "WORLD_SIZE=" + strconv.Itoa(world), "LOCAL_RANK=" + strconv.Itoa(rank),
		"LOCAL_WORLD_SIZE=" + strconv.Itoa(world), "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + strconv.Itoa(masterPort)}
}

// Ranks runs the current test binary once per rank, with -test.run=run
// and env(rank) added to the environment (and RankEnv, and the stand-in
// folder as PIPELINE_CUDA_LIBRARY_PATH when standin is not ""), and waits
// for all. It fails the test with every failing rank's output.
func Ranks(t testing.TB, world int, run, standin string, env func(rank int) []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, world)
	outs := make([][]byte, world)
	for r := range world {
		cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), RankEnv+"="+strconv.Itoa(r))
		if standin != "" {
			cmd.Env = append(cmd.Env, cuda.LibraryPathEnv+"="+standin)
		}
		cmd.Env = append(cmd.Env, env(r)...)
		wg.Go(func() { outs[r], errs[r] = cmd.CombinedOutput() })
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v\n%s", r, err, outs[r])
		}
	}
}

// Mpirun runs the current test binary as world ranks under Open MPI's
// mpirun (-test.run=run, env and the stand-in folder exported to every
// rank), or skips the test when mpirun is not installed.
func Mpirun(t testing.TB, world int, run, standin string, env []string) {
	t.Helper()
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun is not installed (Debian: openmpi-bin)")
	}
	env = append(env, RankEnv+"=mpi")
	if standin != "" {
		env = append(env, cuda.LibraryPathEnv+"="+standin)
	}
	args := []string{"-np", strconv.Itoa(world), "--oversubscribe", "--bind-to", "none"}
	for _, kv := range env {
		args = append(args, "-x", kv)
	}
	args = append(args, os.Args[0], "-test.run=^"+run+"$", "-test.count=1")
	cmd := exec.Command(mpirun, args...)
	// mpirun refuses root without these (CI containers run as root)
	cmd.Env = append(os.Environ(), "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("mpirun -np %d: %v\n%s", world, err, out)
	}
}

// Rank returns the rank of a child started by Ranks (0 under Mpirun: the
// launcher's variables say), or -1 in the parent.
func Rank() int {
	s := os.Getenv(RankEnv)
	if s == "" {
		return -1
	}
	if s == "mpi" {
		return 0
	}
	r, err := strconv.Atoi(s)
	if err != nil {
		panic(fmt.Sprintf("%s=%q", RankEnv, s))
	}
	return r
}
