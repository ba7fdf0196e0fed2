package cuda

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// MemStats reports the caching allocator's state. Sizes are in bytes, rounded up to
// the allocator's size classes.
type MemStats struct {
	InUse     int64 // held by live buffers
	Peak      int64 // highest InUse since the last ResetPeak
	Reserved  int64 // obtained from the driver: InUse plus the cache
	DriverOps int64 // cuMemAlloc calls so far; steady-state training adds none
	Hits      int64 // requests served from the cache
}

// Allocator caches device memory: a freed buffer goes to a free list keyed by its size
// class and is handed out again for the next request of that class, so a training step
// that repeats the previous step's requests calls cuMemAlloc zero times.
type Allocator struct {
	dev   *Device
	mu    sync.Mutex
	free  map[int64][]uintptr
	stats MemStats
}

func newAllocator(d *Device) *Allocator {
	return &Allocator{dev: d, free: map[int64][]uintptr{}}
}

// sizeClass rounds a request: to 512 bytes below 1 MiB, to 2 MiB above.
func sizeClass(n int64) int64 {
	if n <= 0 {
		n = 1
	}
	if n < 1<<20 {
		return (n + 511) &^ 511
	}
	return (n + (2<<20 - 1)) &^ (2<<20 - 1)
}

// Buffer is a block of device memory from the allocator.
type Buffer struct {
	Ptr  uintptr // device address
	Size int64   // bytes requested
	cls  int64
	a    *Allocator
}

// ErrOutOfMemory is wrapped when the GPU cannot satisfy an allocation even after the
// cache is emptied.
var ErrOutOfMemory = errors.New("cuda: out of device memory")

// get returns a buffer of at least n bytes; the context must be current.
func (a *Allocator) get(n int64) (*Buffer, error) {
	cls := sizeClass(n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if l := a.free[cls]; len(l) > 0 {
		p := l[len(l)-1]
		a.free[cls] = l[:len(l)-1]
		a.stats.Hits++
		a.use(cls)
		return &Buffer{Ptr: p, Size: n, cls: cls, a: a}, nil
	}
	var p uintptr
	drv := a.dev.drv
	r := drv.raw(drv.cuMemAlloc, uintptr(unsafe.Pointer(&p)), uintptr(cls))
	if r == resultOutOfMemory {
		// Give the cache back to the driver and try once more.
		if err := a.dev.syncLocked(); err != nil {
			return nil, err
		}
		a.releaseCacheLocked()
		r = drv.raw(drv.cuMemAlloc, uintptr(unsafe.Pointer(&p)), uintptr(cls))
	}
	if r != resultSuccess {
		err := drv.err("cuMemAlloc_v2", r)
		if r == resultOutOfMemory {
			err = fmt.Errorf("%w: %d bytes wanted, %d in use, %d reserved: %v", ErrOutOfMemory, cls, a.stats.InUse, a.stats.Reserved, err)
		}
		return nil, err
	}
	a.stats.DriverOps++
	a.stats.Reserved += cls
	a.use(cls)
	return &Buffer{Ptr: p, Size: n, cls: cls, a: a}, nil
}

func (a *Allocator) use(cls int64) {
	a.stats.InUse += cls
	if a.stats.InUse > a.stats.Peak {
		a.stats.Peak = a.stats.InUse
	}
}

// put returns a buffer to the cache. Work already queued on the device's stream that
// reads the buffer runs before any later work that reuses it, so no sync is needed. Work
// on other streams (NewStream) must be ordered before the Free with an event.
func (a *Allocator) put(b *Buffer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.free[b.cls] = append(a.free[b.cls], b.Ptr)
	a.stats.InUse -= b.cls
}

// drop gives a buffer straight back to the driver instead of caching it (for large,
// one-off scratch such as cuDNN's algorithm search); the context must be current.
func (a *Allocator) drop(d *Device, b *Buffer) {
	if err := d.syncLocked(); err != nil {
		b.Free() // keep it cached rather than free memory that may still be in use
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	d.drv.raw(d.drv.cuMemFree, b.Ptr)
	a.stats.InUse -= b.cls
	a.stats.Reserved -= b.cls
	b.a = nil
}

// releaseCacheLocked frees every cached block; a.mu is held and the context current.
func (a *Allocator) releaseCacheLocked() {
	for cls, l := range a.free {
		for _, p := range l {
			a.dev.drv.raw(a.dev.drv.cuMemFree, p)
			a.stats.Reserved -= cls
		}
		delete(a.free, cls)
	}
}

// releaseAll frees the cache at Close; live buffers die with the context.
func (a *Allocator) releaseAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.releaseCacheLocked()
}

// allocBuffer returns a device buffer of n bytes from the caching allocator. Its contents are
// undefined. Free it with [Buffer.Free].
func (d *Device) allocBuffer(n int64) (*Buffer, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	return d.alloc.get(n)
}

// Free returns the buffer to its allocator's cache for reuse by later allocations.
// Work queued on the device's stream is safe; work on another stream that uses the
// buffer must be done, or ordered before later users with an event, first. Freeing twice
// is a no-op.
func (b *Buffer) Free() {
	if b == nil || b.a == nil {
		return
	}
	b.a.put(b)
	b.a = nil
}

// MemStats returns the allocator's counters.
func (d *Device) MemStats() MemStats {
	d.alloc.mu.Lock()
	defer d.alloc.mu.Unlock()
	return d.alloc.stats
}

// ResetPeak sets Peak to the current InUse.
func (d *Device) ResetPeak() {
	d.alloc.mu.Lock()
	defer d.alloc.mu.Unlock()
	d.alloc.stats.Peak = d.alloc.stats.InUse
}
