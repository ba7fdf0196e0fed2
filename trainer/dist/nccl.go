package dist

import (
	"errors"
	"fmt"
	"sync"

	"github.com/ebitengine/purego"
	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// NCCL's enums used here (nccl.h).
const (
	ncclFloat32 = 7
	ncclAvg     = 4
)

// ncclAPI is the part of libnccl the trainer calls.
type ncclAPI struct {
	path           string
	getVersion     func(version *int32) int32
	getUniqueID    func(id *UniqueID) int32
	commInitRank   func(comm *uintptr, nranks int32, id UniqueID, rank int32) int32 // id by value
	allReduce      func(send, recv uintptr, count uint64, dtype, op int32, comm, stream uintptr) int32
	broadcast      func(send, recv uintptr, count uint64, dtype, root int32, comm, stream uintptr) int32
	groupStart     func() int32
	groupEnd       func() int32
	commDestroy    func(comm uintptr) int32
	getErrorString func(result int32) string
}

var (
	ncclOnce sync.Once
	ncclVal  *ncclAPI
	ncclErr  error
)

// loadNCCL loads libnccl through trainer/cuda and binds its functions.
func loadNCCL() (*ncclAPI, error) {
	ncclOnce.Do(func() {
		lib, err := cuda.LoadNCCL()
		if err != nil {
			ncclErr = fmt.Errorf("dist: world size above 1 needs NCCL: %w", err)
			return
		}
		a := &ncclAPI{path: lib.Path}
		for _, f := range []struct {
			name string
			fn   any
		}{
			{"ncclGetVersion", &a.getVersion}, {"ncclGetUniqueId", &a.getUniqueID},
			{"ncclCommInitRank", &a.commInitRank}, {"ncclAllReduce", &a.allReduce},
			{"ncclBroadcast", &a.broadcast}, {"ncclGroupStart", &a.groupStart}, {"ncclGroupEnd", &a.groupEnd},
			{"ncclCommDestroy", &a.commDestroy}, {"ncclGetErrorString", &a.getErrorString},
		} {
			p, err := purego.Dlsym(lib.Handle, f.name)
			if err != nil || p == 0 {
				ncclErr = fmt.Errorf("dist: %s lacks %s (want NCCL 2.10 or later): %v", lib.Path, f.name, err)
				return
			}
			purego.RegisterFunc(f.fn, p)
		}
		ncclVal = a
	})
	return ncclVal, ncclErr
}

// check turns a ncclResult_t into an error.
func (a *ncclAPI) check(call string, r int32) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("dist: %s: NCCL error %d: %s", call, r, a.getErrorString(r))
}

// version is NCCL's version code (e.g. 22703 for 2.27.3).
func (a *ncclAPI) version() (int, error) {
	var v int32
	err := a.check("ncclGetVersion", a.getVersion(&v))
	return int(v), err
}

func (a *ncclAPI) uniqueID() (UniqueID, error) {
	var id UniqueID
	err := a.check("ncclGetUniqueId", a.getUniqueID(&id))
	return id, err
}

// Buffer is n float32 values at Ptr: host memory for the CPU trainer (and
// the stand-in library), device memory with the real NCCL.
type Buffer struct {
	Ptr uintptr
	N   int
}

// Comm is one rank's NCCL communicator; its collectives queue on the
// Memory's stream.
type Comm struct {
	api  *ncclAPI
	h    uintptr
	mem  Memory
	rank int
}

// newComm joins the communicator of id (ncclCommInitRank, inside mem.Do).
func newComm(api *ncclAPI, id UniqueID, env Env, mem Memory) (*Comm, error) {
	c := &Comm{api: api, mem: mem, rank: env.Rank}
	err := mem.Do(func() error {
		return api.check("ncclCommInitRank", api.commInitRank(&c.h, int32(env.World), id, int32(env.Rank)))
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AllReduceAvg replaces each buffer by its average over the ranks, the
// buffers' collectives grouped into one (ncclGroupStart/End).
func (c *Comm) AllReduceAvg(bufs []Buffer) error {
	return c.group(bufs, func(b Buffer) (string, int32) {
		return "ncclAllReduce", c.api.allReduce(b.Ptr, b.Ptr, uint64(b.N), ncclFloat32, ncclAvg, c.h, c.mem.Stream())
	})
}

// Broadcast copies root's buffers into every rank's.
func (c *Comm) Broadcast(bufs []Buffer, root int) error {
	return c.group(bufs, func(b Buffer) (string, int32) {
		return "ncclBroadcast", c.api.broadcast(b.Ptr, b.Ptr, uint64(b.N), ncclFloat32, int32(root), c.h, c.mem.Stream())
	})
}

func (c *Comm) group(bufs []Buffer, call func(Buffer) (string, int32)) error {
	return c.mem.Do(func() error {
		if err := c.api.check("ncclGroupStart", c.api.groupStart()); err != nil {
			return err
		}
		var errs []error
		for _, b := range bufs {
			if b.N == 0 {
				continue
			}
			if name, r := call(b); r != 0 {
				errs = append(errs, c.api.check(name, r))
			}
		}
		errs = append(errs, c.api.check("ncclGroupEnd", c.api.groupEnd()))
		return errors.Join(errs...)
	})
}

// Destroy frees the communicator.
func (c *Comm) Destroy() error {
	if c == nil || c.h == 0 {
		return nil
	}
	err := c.mem.Do(func() error { return c.api.check("ncclCommDestroy", c.api.commDestroy(c.h)) })
	c.h = 0
	return err
}
