package cuda

import "unsafe"

// Stream is an extra queue of device work, e.g. for copies that overlap compute on the
// device's own stream. Order it against other streams with events.
type Stream struct {
	h   uintptr
	dev *Device
}

// streamNonBlocking is CU_STREAM_NON_BLOCKING: the stream does not synchronise with
// the legacy default stream.
const streamNonBlocking = 1

// NewStream creates a non-blocking stream: work on it overlaps the device's stream
// unless ordered by events ([Device.Wait]).
func (d *Device) NewStream() (*Stream, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	s := &Stream{dev: d}
	if err := d.drv.call("cuStreamCreate", d.drv.cuStreamCreate, uintptr(unsafe.Pointer(&s.h)), streamNonBlocking); err != nil {
		return nil, err
	}
	return s, nil
}

func (d *Device) streamOf(s *Stream) uintptr {
	if s == nil {
		return d.stream
	}
	return s.h
}

// Sync waits for the stream's queued work.
func (s *Stream) Sync() error {
	d := s.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuStreamSynchronize", d.drv.cuStreamSynchronize, s.h)
}

// Wait makes later work on s (nil: the device's stream) wait for ev.
func (d *Device) Wait(s *Stream, ev *Event) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuStreamWaitEvent", d.drv.cuStreamWaitEvent, d.streamOf(s), ev.h, 0)
}

// Destroy releases the stream after its queued work.
func (s *Stream) Destroy() error {
	d := s.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuStreamDestroy_v2", d.drv.cuStreamDestroy, s.h)
}

// Event marks a point in a stream, for ordering and timing.
type Event struct {
	h   uintptr
	dev *Device
}

// NewEvent creates an event with timing enabled.
func (d *Device) NewEvent() (*Event, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	e := &Event{dev: d}
	if err := d.drv.call("cuEventCreate", d.drv.cuEventCreate, uintptr(unsafe.Pointer(&e.h)), 0); err != nil {
		return nil, err
	}
	return e, nil
}

// Record queues the event on s (nil: the device's stream).
func (e *Event) Record(s *Stream) error {
	d := e.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuEventRecord", d.drv.cuEventRecord, e.h, d.streamOf(s))
}

// Sync waits until the event has happened.
func (e *Event) Sync() error {
	d := e.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuEventSynchronize", d.drv.cuEventSynchronize, e.h)
}

// Elapsed waits for end and returns the milliseconds between start and end.
func Elapsed(start, end *Event) (float32, error) {
	d := end.dev
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.leave()
	if err := d.drv.call("cuEventSynchronize", d.drv.cuEventSynchronize, end.h); err != nil {
		return 0, err
	}
	var ms float32
	err := d.drv.call("cuEventElapsedTime", d.drv.cuEventElapsedTime, uintptr(unsafe.Pointer(&ms)), start.h, end.h)
	return ms, err
}

// Destroy releases the event.
func (e *Event) Destroy() error {
	d := e.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuEventDestroy_v2", d.drv.cuEventDestroy, e.h)
}
