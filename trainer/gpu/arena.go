package gpu

import "github.com/timelapse-ml/pipeline/trainer/cuda"

// arena packs many long-lived tensors (an executor's weights and
// gradients, the optimizer's moments) into one device allocation, as
// views: the allocator rounds every buffer over 1 MiB up to its 2 MiB
// class, which over the SD UNet's ~2,000 parameter tensors wastes about a
// MiB each; one buffer rounds once.
type arena struct {
	buf *cuda.Tensor
	off int
}

// arenaAlign keeps views 256-byte aligned (the libraries' and vectorised
// kernels' alignment), in float32 slots.
const arenaAlign = 64

// arenaSlots is the slots a view of n float32 slots takes.
func arenaSlots(n int) int { return (n + arenaAlign - 1) / arenaAlign * arenaAlign }

// newArena allocates room for the given float32 slots (already rounded by
// arenaSlots).
func newArena(dev *cuda.Device, slots int) (*arena, error) {
	if slots == 0 {
		return &arena{}, nil
	}
	t, err := dev.NewTensor(slots)
	if err != nil {
		return nil, err
	}
	return &arena{buf: t}, nil
}

// inArena reports whether a tensor of n float32 slots goes in an arena.
func inArena(n int) bool { return 4*n >= 1<<20 }

// arenaNeed is the arena slots a tensor of n float32 slots takes.
func arenaNeed(n int) int {
	if !inArena(n) {
		return 0
	}
	return arenaSlots(n)
}

// take is the next view of numel(shape) float32 slots, or a tensor of its
// own under 1 MiB (inArena).
func (a *arena) take(dev *cuda.Device, shape ...int) (*cuda.Tensor, error) {
	if !inArena(numel(shape)) {
		return dev.NewTensor(shape...)
	}
	v, err := a.buf.View(a.off, shape...)
	if err != nil {
		return nil, err
	}
	a.off += arenaSlots(numel(shape))
	return v, nil
}

// free frees the buffer: every view is gone with it (nil-safe).
func (a *arena) free() {
	if a != nil && a.buf != nil {
		a.buf.Free()
		a.buf = nil
	}
}
