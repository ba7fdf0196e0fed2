package dist

import "fmt"

// Slice is rank's part of a global batch of size global: the contiguous
// clips [lo, hi). The global batch must divide evenly, so that every rank
// steps on the same shape and the average of the ranks' mean gradients is
// the global batch's mean gradient.
//
// With the loader's epoch order (shards.SamplingEpoch: every window once
// per epoch, in a seeded permutation the same on every rank), rank r of W
// reads positions p with p mod global in [lo, hi): within an epoch no
// window is read by two ranks, and together the ranks read exactly the
// windows one process would with the global batch, which is what lets a
// job resume at any world size.
func Slice(global, rank, world int) (lo, hi int, err error) {
	if world < 1 || rank < 0 || rank >= world {
		return 0, 0, fmt.Errorf("dist: rank %d of world size %d", rank, world)
	}
	if global < world || global%world != 0 {
		return 0, 0, fmt.Errorf("dist: batch %d does not split evenly over %d ranks: the batch is the global batch; "+
			"make it a multiple of the world size", global, world)
	}
	per := global / world
	return rank * per, (rank + 1) * per, nil
}
