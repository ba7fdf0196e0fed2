package cuda

import "fmt"

// View is the elements off..off+numel(shape) of t, shaped shape, sharing
// t's memory (an executor's chunk of rows): freeing it frees nothing, and
// it must not be used after t is freed.
func (t *Tensor) View(off int, shape ...int) (*Tensor, error) {
	n := numel(shape)
	if off < 0 || off+n > t.n {
		return nil, fmt.Errorf("cuda: view of %d elements at %d of a tensor of %d", n, off, t.n)
	}
	return &Tensor{Shape: append([]int(nil), shape...), DType: t.DType, dev: t.dev, n: n,
		buf: &Buffer{Ptr: t.buf.Ptr + uintptr(off)*4, Size: int64(n) * 4}}, nil
}
