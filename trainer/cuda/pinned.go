package cuda

import (
	"fmt"
	"unsafe"
)

// memHostAllocPortable makes pinned memory usable from every context.
const memHostAllocPortable = 1

// Pinned is page-locked host memory: copies to and from it run asynchronously at full
// bus speed. It lives outside the Go heap; free it with [Pinned.Free].
type Pinned struct {
	p   unsafe.Pointer
	n   int
	dev *Device
}

// NewPinned allocates n float32 of page-locked host memory.
func (d *Device) NewPinned(n int) (*Pinned, error) {
	if n <= 0 {
		return nil, fmt.Errorf("cuda: pinned buffer of %d elements", n)
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	pb := &Pinned{n: n, dev: d}
	if err := d.drv.call("cuMemHostAlloc", d.drv.cuMemHostAlloc, uintptr(unsafe.Pointer(&pb.p)), uintptr(n*4), memHostAllocPortable); err != nil {
		return nil, fmt.Errorf("pinned %d floats: %w", n, err)
	}
	return pb, nil
}

// Floats is the buffer as a Go slice, valid until Free.
func (p *Pinned) Floats() []float32 { return unsafe.Slice((*float32)(p.p), p.n) }

// Free releases the page-locked memory.
func (p *Pinned) Free() error {
	if p == nil || p.p == nil {
		return nil
	}
	d := p.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	err := d.drv.call("cuMemFreeHost", d.drv.cuMemFreeHost, uintptr(p.p))
	p.p = nil
	return err
}

// DownloadAsync queues a copy of t into the pinned buffer on stream s (nil: the
// device's stream) and returns at once; wait with s.Sync or an event.
func (t *Tensor) DownloadAsync(p *Pinned, s *Stream) error {
	if err := t.checkLen("download", p.n); err != nil {
		return err
	}
	d := t.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuMemcpyDtoHAsync_v2", d.drv.cuMemcpyDtoHAsync, uintptr(p.p), t.buf.Ptr, uintptr(t.Bytes()), d.streamOf(s))
}

// UploadAsync queues a copy of the pinned buffer into t on stream s (nil: the device's
// stream); the pinned buffer must stay untouched until the copy is done.
func (t *Tensor) UploadAsync(p *Pinned, s *Stream) error {
	if err := t.checkLen("upload", p.n); err != nil {
		return err
	}
	d := t.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuMemcpyHtoDAsync_v2", d.drv.cuMemcpyHtoDAsync, t.buf.Ptr, uintptr(p.p), uintptr(t.Bytes()), d.streamOf(s))
}
