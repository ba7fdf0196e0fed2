package dist

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// DefaultTimeout is how long the rendezvous waits by default.
const DefaultTimeout = 30 * time.Minute

// Group is this process's membership in a data-parallel job: the
// control channel to the other ranks and, once Open has run, the NCCL
// communicator on a Memory.
type Group struct {
	Env  Env
	ctl  *Control
	api  *ncclAPI // nil: no NCCL (world size 1)
	id   UniqueID
	comm *Comm
	log  *slog.Logger
	// opened: the id was used (a communicator was made)
	opened bool
}

// UsesNCCL reports whether env needs NCCL: world size above 1, or
// PIPELINE_DIST_NCCL=1.
func UsesNCCL(env Env) bool { return env.World > 1 || os.Getenv(NCCLEnv) == "1" }

// Join loads NCCL when env needs it (a missing libnccl is an error only
// then), and meets the other ranks: rank 0 makes the NCCL id and hands it
// out over TCP (see Rendezvous; the wait is PIPELINE_DIST_TIMEOUT).
func Join(ctx context.Context, env Env, log *slog.Logger) (*Group, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := DefaultTimeout
	if s := os.Getenv(TimeoutEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("dist: %s=%q: want a duration such as 10m", TimeoutEnv, s)
		}
		timeout = d
	}
	g := &Group{Env: env, log: log}
	var newID func() (UniqueID, error)
	if UsesNCCL(env) {
		api, err := loadNCCL()
		if err != nil {
			return nil, err
		}
		v, err := api.version()
		if err != nil {
			return nil, err
		}
		g.api = api
		newID = api.uniqueID
		log.Info("NCCL loaded", slog.String("path", api.path), slog.Int("version", v))
	}
	if env.World > 1 {
		log.Info("data-parallel rendezvous", slog.String("launcher", env.Launcher), slog.Int("rank", env.Rank),
			slog.Int("world_size", env.World), slog.Int("local_rank", env.LocalRank),
			slog.String("addr", env.Addr), slog.Int("port", env.Port))
	}
	ctl, id, err := Rendezvous(ctx, env, timeout, newID)
	if err != nil {
		return nil, err
	}
	g.ctl, g.id = ctl, id
	return g, nil
}

// Rank, World and Root describe the process.
func (g *Group) Rank() int   { return g.Env.Rank }
func (g *Group) World() int  { return g.Env.World }
func (g *Group) Root() bool  { return g.Env.Rank == 0 }
func (g *Group) NCCL() bool  { return g.api != nil }
func (g *Group) Comm() *Comm { return g.comm }

// Open creates the NCCL communicator on mem (every rank at once: it
// returns when all have joined). Without NCCL it does nothing.
func (g *Group) Open(mem Memory) error {
	if g.api == nil || g.comm != nil {
		return nil
	}
	if g.opened {
		// an id serves one communicator: rank 0 makes another
		var id UniqueID
		if g.Root() {
			var err error
			if id, err = g.api.uniqueID(); err != nil {
				return err
			}
		}
		b, err := g.ctl.Broadcast(id.Internal[:])
		if err != nil {
			return err
		}
		if len(b) != len(id.Internal) {
			return fmt.Errorf("dist: rank 0 sent an NCCL id of %d bytes", len(b))
		}
		copy(g.id.Internal[:], b)
	}
	g.opened = true
	c, err := newComm(g.api, g.id, g.Env, mem)
	if err != nil {
		return err
	}
	g.comm = c
	return nil
}

// NewReducer buckets parameters of the given sizes for the gradient
// all-reduce (PIPELINE_DIST_BUCKET_MB, default 25 MiB). Nil without a
// communicator.
func (g *Group) NewReducer(sizes []int) (*Reducer, error) {
	if g.comm == nil {
		return nil, nil
	}
	capBytes := DefaultBucketBytes
	if s := os.Getenv(BucketEnv); s != "" {
		mb, err := strconv.ParseFloat(s, 64)
		if err != nil || mb <= 0 {
			return nil, fmt.Errorf("dist: %s=%q: want a positive size in MiB", BucketEnv, s)
		}
		capBytes = int(mb * (1 << 20))
	}
	r := NewReducer(g.comm, sizes, capBytes)
	g.log.Info("gradient buckets", slog.Int("buckets", len(r.Buckets())), slog.Int("bucket_bytes", capBytes))
	return r, nil
}

// BroadcastParams overwrites every rank's values with rank 0's (staged
// through the communicator's Memory: on a GPU, copied there and back).
func (g *Group) BroadcastParams(params [][]float32) error {
	if g.comm == nil {
		return nil
	}
	mem := g.comm.mem
	for start := 0; start < len(params); {
		// staging in groups of about 64 MiB bounds the device memory used
		var bufs []Buffer
		var releases []func() error
		bytes := 0
		end := start
		for ; end < len(params) && (end == start || bytes+4*len(params[end]) <= 64<<20); end++ {
			b, rel, err := mem.Stage(params[end])
			if err != nil {
				for _, r := range releases {
					r()
				}
				return fmt.Errorf("dist: broadcast: %w", err)
			}
			bufs, releases = append(bufs, b), append(releases, rel)
			bytes += 4 * len(params[end])
		}
		err := g.comm.Broadcast(bufs, 0)
		for _, r := range releases {
			err = errors.Join(err, r())
		}
		if err != nil {
			return fmt.Errorf("dist: broadcast of the parameters from rank 0: %w", err)
		}
		start = end
	}
	return nil
}

// Mean averages v over the ranks (over the control channel; the same
// value on every rank).
func (g *Group) Mean(v float64) (float64, error) {
	s, err := g.ctl.SumFloat64([]float64{v})
	if err != nil {
		return 0, err
	}
	return s[0] / float64(g.Env.World), nil
}

// Broadcast returns rank 0's payload on every rank (over the control
// channel).
func (g *Group) Broadcast(payload []byte) ([]byte, error) { return g.ctl.Broadcast(payload) }

// Agree returns rank 0's value of v on every rank.
func (g *Group) Agree(v int64) (int64, error) {
	b, err := g.ctl.Broadcast(binary.LittleEndian.AppendUint64(nil, uint64(v)))
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("dist: rank 0 sent %d bytes, want 8", len(b))
	}
	return int64(binary.LittleEndian.Uint64(b)), nil
}

// Same checks that every rank has the same value of v (what is named
// what in the error).
func (g *Group) Same(what string, v int64) error {
	all, err := g.ctl.AllGather(binary.LittleEndian.AppendUint64(nil, uint64(v)))
	if err != nil {
		return err
	}
	for r, b := range all {
		if got := int64(binary.LittleEndian.Uint64(b)); got != v {
			return fmt.Errorf("dist: %s is %d on rank %d and %d on rank %d (is the output folder shared by every rank?)",
				what, v, g.Env.Rank, got, r)
		}
	}
	return nil
}

// CloseComm destroys the communicator (before its Memory goes).
func (g *Group) CloseComm() error {
	err := g.comm.Destroy()
	g.comm = nil
	return err
}

// Close destroys the communicator and closes the control channel.
func (g *Group) Close() error {
	if g == nil {
		return nil
	}
	err := g.comm.Destroy()
	if g.ctl != nil {
		err = errors.Join(err, g.ctl.Close())
	}
	return err
}
