package cuda

import (
	"fmt"
	"math"
	"unsafe"
)

// DType is a tensor's element type. Only Float32 exists today.
type DType int

// Element types.
const (
	Float32 DType = iota
)

// Tensor is a dense, row-major float32 array in device memory.
type Tensor struct {
	Shape []int
	DType DType
	buf   *Buffer
	dev   *Device
	n     int
}

// numel is the product of shape.
func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

// NewTensor allocates an uninitialised tensor from the caching allocator.
func (d *Device) NewTensor(shape ...int) (*Tensor, error) {
	for _, s := range shape {
		if s < 0 {
			return nil, fmt.Errorf("cuda: negative dimension in shape %v", shape)
		}
	}
	n := numel(shape)
	b, err := d.allocBuffer(int64(n) * 4)
	if err != nil {
		return nil, fmt.Errorf("tensor %v: %w", shape, err)
	}
	return &Tensor{Shape: append([]int(nil), shape...), buf: b, dev: d, n: n}, nil
}

// FromHost allocates a tensor of the given shape and copies src into it.
func (d *Device) FromHost(src []float32, shape ...int) (*Tensor, error) {
	if len(shape) == 0 {
		shape = []int{len(src)}
	}
	t, err := d.NewTensor(shape...)
	if err != nil {
		return nil, err
	}
	if err := t.Upload(src); err != nil {
		t.Free()
		return nil, err
	}
	return t, nil
}

// Len is the number of elements.
func (t *Tensor) Len() int { return t.n }

// Bytes is the size of the data in bytes.
func (t *Tensor) Bytes() int64 { return int64(t.n) * 4 }

// Ptr is the device address of the first element.
func (t *Tensor) Ptr() uintptr { return t.buf.Ptr }

// Device is the tensor's device.
func (t *Tensor) Device() *Device { return t.dev }

// Free returns the memory to the allocator's cache; the tensor must not be used after.
func (t *Tensor) Free() {
	if t != nil && t.buf != nil {
		t.buf.Free()
		t.buf = nil
	}
}

func (t *Tensor) checkLen(op string, n int) error {
	if n != t.n {
		return fmt.Errorf("cuda: %s: host has %d elements, tensor %v has %d", op, n, t.Shape, t.n)
	}
	return nil
}

// Upload copies src (len must equal Len) to the device. It returns once src may be reused.
func (t *Tensor) Upload(src []float32) error {
	if err := t.checkLen("upload", len(src)); err != nil {
		return err
	}
	if t.n == 0 {
		return nil
	}
	d := t.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	// From pageable memory the driver stages src before returning.
	return d.drv.call("cuMemcpyHtoDAsync_v2", d.drv.cuMemcpyHtoDAsync, t.buf.Ptr, uintptr(unsafe.Pointer(&src[0])), uintptr(t.Bytes()), d.stream)
}

// Download waits for queued work and copies the tensor into dst (len must equal Len).
func (t *Tensor) Download(dst []float32) error {
	if err := t.checkLen("download", len(dst)); err != nil {
		return err
	}
	if t.n == 0 {
		return nil
	}
	d := t.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	if err := d.drv.call("cuMemcpyDtoHAsync_v2", d.drv.cuMemcpyDtoHAsync, uintptr(unsafe.Pointer(&dst[0])), t.buf.Ptr, uintptr(t.Bytes()), d.stream); err != nil {
		return err
	}
	return d.syncLocked()
}

// ToHost returns a new slice holding the tensor's values.
func (t *Tensor) ToHost() ([]float32, error) {
	out := make([]float32, t.n)
	return out, t.Download(out)
}

// Fill sets every element to v.
func (t *Tensor) Fill(v float32) error {
	if t.n == 0 {
		return nil
	}
	d := t.dev
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.drv.call("cuMemsetD32Async", d.drv.cuMemsetD32Async, t.buf.Ptr, uintptr(math.Float32bits(v)), uintptr(t.n), d.stream)
}
