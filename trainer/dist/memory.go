package dist

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// Memory is where a rank's NCCL buffers live and where its collectives
// queue: the host (the CPU trainer; only a host library such as the
// stand-in the tests build can read it) or one GPU with a communication
// stream of its own.
type Memory interface {
	// Do runs NCCL calls (on a GPU, with its context current).
	Do(fn func() error) error
	// Stream is the stream NCCL queues on (0 on the host).
	Stream() uintptr
	// Stage returns a buffer holding host's values for a collective, and
	// a function that copies the buffer's values back into host (after the
	// collective) and releases it.
	Stage(host []float32) (Buffer, func() error, error)
}

// HostMemory is the host: collectives on Go memory, pinned for the call.
type HostMemory struct{}

func (HostMemory) Do(fn func() error) error { return fn() }
func (HostMemory) Stream() uintptr          { return 0 }

// Stage pins host in place; the collective works on it directly.
func (HostMemory) Stage(host []float32) (Buffer, func() error, error) {
	var p runtime.Pinner
	if len(host) == 0 {
		return Buffer{}, func() error { return nil }, nil
	}
	p.Pin(&host[0])
	return HostBuffer(host), func() error { p.Unpin(); return nil }, nil
}

// HostBuffer is a buffer over Go memory. The caller keeps it pinned
// (runtime.Pinner) while a collective may use it.
func HostBuffer(x []float32) Buffer {
	if len(x) == 0 {
		return Buffer{}
	}
	return Buffer{Ptr: uintptr(unsafe.Pointer(&x[0])), N: len(x)}
}

// DeviceMemory is one GPU and the communication stream its collectives
// queue on, apart from the device's compute stream.
type DeviceMemory struct {
	Dev  *cuda.Device
	comm *cuda.Stream
}

// NewDeviceMemory creates the communication stream on dev.
func NewDeviceMemory(dev *cuda.Device) (*DeviceMemory, error) {
	s, err := dev.NewStream()
	if err != nil {
		return nil, fmt.Errorf("dist: communication stream: %w", err)
	}
	return &DeviceMemory{Dev: dev, comm: s}, nil
}

func (m *DeviceMemory) Do(fn func() error) error { return m.Dev.Do(fn) }
func (m *DeviceMemory) Stream() uintptr          { return m.Dev.StreamHandle(m.comm) }

// CommStream is the communication stream.
func (m *DeviceMemory) CommStream() *cuda.Stream { return m.comm }

// Stage copies host to a new device tensor; the release function waits for
// the communication stream, copies the tensor back and frees it.
func (m *DeviceMemory) Stage(host []float32) (Buffer, func() error, error) {
	t, err := m.Dev.FromHost(host)
	if err != nil {
		return Buffer{}, nil, err
	}
	return Buffer{Ptr: t.Ptr(), N: t.Len()}, func() error {
		defer t.Free()
		if err := m.comm.Sync(); err != nil {
			return err
		}
		return t.Download(host)
	}, nil
}

// Close destroys the communication stream.
func (m *DeviceMemory) Close() error { return m.comm.Destroy() }
