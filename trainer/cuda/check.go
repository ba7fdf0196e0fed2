package cuda

import (
	"fmt"
	"math"
)

// operand names a tensor argument of an op and the element count it must have.
type operand struct {
	name string
	t    *Tensor
	n    int
}

// checkOperands reports a nil, freed, foreign or wrongly sized operand of op.
func (d *Device) checkOperands(op string, ops ...operand) error {
	for _, o := range ops {
		switch {
		case o.t == nil:
			return fmt.Errorf("cuda: %s: %s is nil", op, o.name)
		case o.t.buf == nil:
			return fmt.Errorf("cuda: %s: %s was freed", op, o.name)
		case o.t.dev != d:
			return fmt.Errorf("cuda: %s: %s lives on another device", op, o.name)
		case o.t.n != o.n:
			return fmt.Errorf("cuda: %s: %s has %d elements (shape %v), want %d", op, o.name, o.t.n, o.t.Shape, o.n)
		case o.n > math.MaxInt32:
			return fmt.Errorf("cuda: %s: %s has %d elements, more than kernels index", op, o.name, o.n)
		}
	}
	return nil
}

// optional returns the operands of the non-nil tensors among ops.
func optional(ops ...operand) []operand {
	out := ops[:0:0]
	for _, o := range ops {
		if o.t != nil {
			out = append(out, o)
		}
	}
	return out
}

// scratch allocates a temporary tensor; the context must be current. Free it when the
// work using it is queued: stream order keeps later reuse safe.
func (d *Device) scratch(n int) (*Tensor, error) {
	b, err := d.alloc.get(int64(n) * 4)
	if err != nil {
		return nil, err
	}
	return &Tensor{Shape: []int{n}, buf: b, dev: d, n: n}, nil
}
