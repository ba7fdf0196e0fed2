package dist

import (
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Env
	}{
		{"none", nil, Env{World: 1}},
		{"torchrun", map[string]string{"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
			"MASTER_ADDR": "node0", "MASTER_PORT": "29500"},
			Env{Rank: 3, World: 8, LocalRank: 1, Addr: "node0", Port: 29501, Launcher: "torchrun"}},
		{"kubeflow pytorchjob", map[string]string{"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"},
			Env{Rank: 0, World: 2, Addr: "job-master-0", Port: 23457, Launcher: "torchrun"}},
		{"port override", map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "29500", PortEnv: "40000", AddrEnv: "10.0.0.1"},
			Env{Rank: 1, World: 2, Addr: "10.0.0.1", Port: 40000, Launcher: "torchrun"}},
		{"indexed job", map[string]string{"JOB_COMPLETION_INDEX": "2", "WORLD_SIZE": "4", "MASTER_ADDR": "train-0.train"},
			Env{Rank: 2, World: 4, Addr: "train-0.train", Port: DefaultPort, Launcher: "indexed-job"}},
		{"open mpi one host", map[string]string{"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2",
			"OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"},
			Env{Rank: 1, World: 2, LocalRank: 1, Addr: "127.0.0.1", Port: DefaultPort, Launcher: "openmpi"}},
		{"open mpi hosts", map[string]string{"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8",
			"OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "4", "MASTER_ADDR": "gpu1"},
			Env{Rank: 5, World: 8, LocalRank: 1, Addr: "gpu1", Port: DefaultPort, Launcher: "openmpi"}},
		{"slurm srun", map[string]string{"SLURM_PROCID": "6", "SLURM_NTASKS": "8", "SLURM_LOCALID": "2", "SLURM_STEP_ID": "0",
			"SLURM_JOB_NODELIST": "gpu[03-04,07]"},
			Env{Rank: 6, World: 8, LocalRank: 2, Addr: "gpu03", Port: DefaultPort, Launcher: "slurm"}},
		{"slurm step tasks", map[string]string{"SLURM_PROCID": "1", "SLURM_NTASKS": "16", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEPID": "1",
			"SLURM_STEP_NODELIST": "a1,a2", "SLURM_JOB_NODELIST": "b[1-9]"},
			Env{Rank: 1, World: 2, Addr: "a1", Port: DefaultPort, Launcher: "slurm"}},
		{"slurm batch script", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}, Env{World: 1}},
		{"torchrun inside slurm", map[string]string{"RANK": "2", "WORLD_SIZE": "4", "MASTER_ADDR": "x", "MASTER_PORT": "1000",
			"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0"},
			Env{Rank: 2, World: 4, Addr: "x", Port: 1001, Launcher: "torchrun"}},
		{"mpirun inside slurm", map[string]string{"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "MASTER_ADDR": "m",
			"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0"},
			Env{Rank: 1, World: 2, Addr: "m", Port: DefaultPort, Launcher: "openmpi"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Detect(func(k string) string { return c.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestDetectErrors(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"RANK": "x", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, `RANK="x"`},
		{map[string]string{"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, "rank 2 of world size 2"},
		{map[string]string{"WORLD_SIZE": "2", "MASTER_ADDR": "h"}, "RANK is not set"},
		{map[string]string{"RANK": "1", "WORLD_SIZE": "2"}, "set MASTER_ADDR"},
		{map[string]string{"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", PortEnv: "0"}, PortEnv},
		{map[string]string{"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}, "set MASTER_ADDR"},
	}
	for _, c := range cases {
		_, err := Detect(func(k string) string { return c.env[k] })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %q", c.env, err, c.want)
		}
	}
}

func TestFirstHost(t *testing.T) {
	for in, want := range map[string]string{"": "", "n1": "n1", "n1,n2": "n1", "gpu[03-05,9],cpu1": "gpu03",
		"gpu[7]": "gpu7", "a-b[10,12]": "a-b10"} {
		if got := firstHost(in); got != want {
			t.Errorf("firstHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAssignBuckets(t *testing.T) {
	// sizes in floats (4 bytes each); caps 40 bytes, the first 16
	sizes := []int{3, 2, 5, 1, 1, 12, 2, 4}
	got := AssignBuckets(sizes, 40, 16)
	// 7 fills the first bucket (16 bytes); 6 and 5 (8 + 48 bytes) do not
	// fit one; 5 alone passes the cap; 4..1 make 36 bytes
	want := [][]int{{7}, {6}, {5}, {4, 3, 2, 1}, {0}}
	if !equalBuckets(got, want) {
		t.Fatalf("buckets %v, want %v", got, want)
	}
	seen := map[int]bool{}
	for _, b := range got {
		for j := 1; j < len(b); j++ {
			if b[j] >= b[j-1] {
				t.Fatalf("bucket %v not in reverse parameter order", b)
			}
		}
		for _, i := range b {
			if seen[i] {
				t.Fatalf("parameter %d in two buckets", i)
			}
			seen[i] = true
		}
	}
	if len(seen) != len(sizes) {
		t.Fatalf("%d of %d parameters bucketed", len(seen), len(sizes))
	}
	if got := AssignBuckets(sizes, 1<<20, 1<<20); !equalBuckets(got, [][]int{{7, 6, 5, 4, 3, 2, 1, 0}}) {
		t.Fatalf("one large bucket: %v", got)
	}
}

func equalBuckets(a, b [][]int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

func TestSlice(t *testing.T) {
	for _, c := range []struct{ global, world int }{{8, 1}, {8, 2}, {8, 4}, {6, 3}} {
		next := 0
		for r := range c.world {
			lo, hi, err := Slice(c.global, r, c.world)
			if err != nil {
				t.Fatal(err)
			}
			if lo != next || hi-lo != c.global/c.world {
				t.Fatalf("global %d world %d rank %d: [%d,%d)", c.global, c.world, r, lo, hi)
			}
			next = hi
		}
		if next != c.global {
			t.Fatalf("slices cover %d of %d", next, c.global)
		}
	}
	if _, _, err := Slice(6, 0, 4); err == nil || !strings.Contains(err.Error(), "multiple of the world size") {
		t.Fatalf("batch 6 over 4 ranks: %v", err)
	}
}
