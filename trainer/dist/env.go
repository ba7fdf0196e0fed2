package dist

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Environment variables of this package (besides the launchers' own).
const (
	// PortEnv is the TCP port of the rendezvous on rank 0 (default: MASTER_PORT+1
	// when MASTER_PORT is set, else DefaultPort). MASTER_PORT itself belongs to
	// torchrun's store.
	PortEnv = "PIPELINE_DIST_PORT"
	// AddrEnv overrides MASTER_ADDR as rank 0's host.
	AddrEnv = "PIPELINE_DIST_ADDR"
	// TimeoutEnv is how long the rendezvous waits for every rank (a Go
	// duration, default 30m: rank 0 may first run the stages before train).
	TimeoutEnv = "PIPELINE_DIST_TIMEOUT"
	// NCCLEnv=1 uses NCCL even at world size 1.
	NCCLEnv = "PIPELINE_DIST_NCCL"
	// BucketEnv is the gradient bucket size in MiB (default 25, as DDP).
	BucketEnv = "PIPELINE_DIST_BUCKET_MB"
)

// DefaultPort is the rendezvous port when neither PIPELINE_DIST_PORT nor
// MASTER_PORT is set: torchrun's default MASTER_PORT (29500) plus one.
const DefaultPort = 29501

// Env is this process's place in the job.
type Env struct {
	// Rank is this process (0-based) among World; LocalRank among the
	// processes of its host (it picks the GPU).
	Rank, World, LocalRank int
	// Addr and Port are rank 0's rendezvous address.
	Addr string
	Port int
	// Launcher names the variables the values came from: "torchrun"
	// (also Kubeflow's PyTorchJob and a hand-set RANK/WORLD_SIZE),
	// "indexed-job", "openmpi", "slurm", or "" for a single process.
	Launcher string
}

// Distributed reports whether there is more than one rank.
func (e Env) Distributed() bool { return e.World > 1 }

// FromEnv reads the process's Env from the environment.
func FromEnv() (Env, error) { return Detect(os.Getenv) }

// Detect reads an Env through getenv. The first launcher whose variables
// are set wins, in this order: RANK/WORLD_SIZE (torchrun, Kubeflow, any
// launcher that sets them by hand); Open MPI's OMPI_COMM_WORLD_*; Slurm's
// SLURM_PROCID/SLURM_NTASKS inside a job step (srun; SLURM_STEP_ID set, so
// the batch script itself is one process); a Kubernetes Indexed Job's
// JOB_COMPLETION_INDEX with WORLD_SIZE. Nothing set is world size 1.
func Detect(getenv func(string) string) (Env, error) {
	e := Env{World: 1}
	var err error
	num := func(name string, dst *int) {
		if err != nil {
			return
		}
		s := strings.TrimSpace(getenv(name))
		if s == "" {
			return
		}
		v, perr := strconv.Atoi(s)
		if perr != nil || v < 0 {
			err = fmt.Errorf("dist: %s=%q: want a non-negative integer", name, s)
			return
		}
		*dst = v
	}
	switch {
	case getenv("RANK") != "" || (getenv("WORLD_SIZE") != "" && getenv("JOB_COMPLETION_INDEX") == ""):
		e.Launcher = "torchrun"
		num("RANK", &e.Rank)
		num("WORLD_SIZE", &e.World)
		num("LOCAL_RANK", &e.LocalRank)
	case getenv("OMPI_COMM_WORLD_RANK") != "":
		e.Launcher = "openmpi"
		num("OMPI_COMM_WORLD_RANK", &e.Rank)
		num("OMPI_COMM_WORLD_SIZE", &e.World)
		num("OMPI_COMM_WORLD_LOCAL_RANK", &e.LocalRank)
	case getenv("SLURM_PROCID") != "" && (getenv("SLURM_STEP_ID") != "" || getenv("SLURM_STEPID") != ""):
		e.Launcher = "slurm"
		num("SLURM_PROCID", &e.Rank)
		if getenv("SLURM_STEP_NUM_TASKS") != "" {
			num("SLURM_STEP_NUM_TASKS", &e.World)
		} else {
			num("SLURM_NTASKS", &e.World)
		}
		num("SLURM_LOCALID", &e.LocalRank)
	case getenv("JOB_COMPLETION_INDEX") != "":
		e.Launcher = "indexed-job"
		num("JOB_COMPLETION_INDEX", &e.Rank)
		num("WORLD_SIZE", &e.World)
		num("LOCAL_RANK", &e.LocalRank)
	default:
		return Env{World: 1}, nil
	}
	if err != nil {
		return Env{}, err
	}
	if e.Launcher == "torchrun" && getenv("RANK") == "" && e.World > 1 {
		return Env{}, fmt.Errorf("dist: WORLD_SIZE=%d but RANK is not set", e.World)
	}
	if e.World < 1 || e.Rank >= e.World {
		return Env{}, fmt.Errorf("dist: %s: rank %d of world size %d", e.Launcher, e.Rank, e.World)
	}
	if e.Addr, e.Port, err = rendezvous(getenv, e); err != nil {
		return Env{}, err
	}
	return e, nil
}

// rendezvous finds rank 0's address and the rendezvous port.
func rendezvous(getenv func(string) string, e Env) (string, int, error) {
	addr := getenv(AddrEnv)
	if addr == "" {
		addr = getenv("MASTER_ADDR")
	}
	if addr == "" && e.Launcher == "slurm" {
		addr = firstHost(getenv("SLURM_STEP_NODELIST"))
		if addr == "" {
			addr = firstHost(getenv("SLURM_JOB_NODELIST"))
		}
	}
	if addr == "" && e.Launcher == "openmpi" && getenv("OMPI_COMM_WORLD_LOCAL_SIZE") == getenv("OMPI_COMM_WORLD_SIZE") {
		addr = "127.0.0.1" // every rank on this host
	}
	if addr == "" && e.World > 1 {
		return "", 0, fmt.Errorf("dist: %s: rank 0's host is unknown: set MASTER_ADDR (or %s)", e.Launcher, AddrEnv)
	}
	if addr == "" {
		addr = "127.0.0.1"
	}
	port := DefaultPort
	if s := getenv(PortEnv); s != "" {
		p, err := strconv.Atoi(s)
		if err != nil || p < 1 || p > 65535 {
			return "", 0, fmt.Errorf("dist: %s=%q: want a TCP port", PortEnv, s)
		}
		port = p
	} else if s := getenv("MASTER_PORT"); s != "" {
		p, err := strconv.Atoi(s)
		if err != nil || p < 1 || p > 65534 {
			return "", 0, fmt.Errorf("dist: MASTER_PORT=%q: want a TCP port", s)
		}
		port = p + 1
	}
	return addr, port, nil
}

// firstHost returns the first host of a Slurm host list: "gpu[03-05,9],cpu1"
// gives "gpu03".
func firstHost(list string) string {
	list = strings.TrimSpace(list)
	if list == "" {
		return ""
	}
	end := len(list)
	if i := strings.IndexAny(list, ",["); i >= 0 {
		end = i
	}
	host := list[:end]
	if end < len(list) && list[end] == '[' {
		rng := list[end+1:]
		if j := strings.IndexAny(rng, ",-]"); j >= 0 {
			host += rng[:j]
		}
	}
	return host
}

// DeviceOrdinal is the GPU this rank uses among those it sees: its local
// rank, or 0 when CUDA_VISIBLE_DEVICES shows it one GPU (a launcher that
// gives each task its own, such as srun --gpus-per-task).
func (e Env) DeviceOrdinal() int {
	if v := strings.TrimSpace(os.Getenv("CUDA_VISIBLE_DEVICES")); v != "" && !strings.Contains(v, ",") {
		return 0
	}
	return e.LocalRank
}
