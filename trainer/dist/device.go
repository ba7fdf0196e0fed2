package dist

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// DeviceReducer feeds a Reducer from a GPU's backward pass (it is
// trainer/gpu's GradReducer): the communication stream waits for each
// gradient's event, so a bucket's all-reduce starts once its gradients are
// computed, overlapping the rest of the backward pass on the compute
// stream.
type DeviceReducer struct {
	red  *Reducer
	mem  *DeviceMemory
	done *cuda.Event
}

// NewDeviceReducer wraps red, whose communicator queues on mem.
func NewDeviceReducer(red *Reducer, mem *DeviceMemory) (*DeviceReducer, error) {
	ev, err := mem.Dev.NewEvent()
	if err != nil {
		return nil, fmt.Errorf("dist: %w", err)
	}
	return &DeviceReducer{red: red, mem: mem, done: ev}, nil
}

// Ready orders the communication stream after computed and marks the
// gradient ready.
func (d *DeviceReducer) Ready(i int, grad *cuda.Tensor, computed *cuda.Event) error {
	if err := d.mem.Dev.Wait(d.mem.comm, computed); err != nil {
		return err
	}
	return d.red.Ready(i, Buffer{Ptr: grad.Ptr(), N: grad.Len()})
}

// Flush checks every bucket went and returns an event after the last
// all-reduce on the communication stream.
func (d *DeviceReducer) Flush() (*cuda.Event, error) {
	if err := d.red.Flush(); err != nil {
		return nil, err
	}
	if err := d.done.Record(d.mem.comm); err != nil {
		return nil, err
	}
	return d.done, nil
}

// Close releases the event.
func (d *DeviceReducer) Close() error { return d.done.Destroy() }
