package dist

import (
	"fmt"
	"runtime"
)

// Bucket sizes of PyTorch DDP: 25 MiB, the first bucket (the last
// parameters, whose gradients come first) 1 MiB so that communication
// starts early.
const (
	DefaultBucketBytes = 25 << 20
	FirstBucketBytes   = 1 << 20
)

// AssignBuckets groups parameters (sizes in float32 values, in parameter
// order) into buckets in reverse parameter order, the order the backward
// pass produces their gradients: each bucket holds consecutive parameters
// until adding the next would pass capBytes (firstBytes for the first
// bucket); a parameter larger than the cap is a bucket of its own. Each
// bucket lists parameter indices, descending.
func AssignBuckets(sizes []int, capBytes, firstBytes int) [][]int {
	var out [][]int
	var cur []int
	bytes := 0
	limit := firstBytes
	for i := len(sizes) - 1; i >= 0; i-- {
		b := 4 * sizes[i]
		if len(cur) > 0 && bytes+b > limit {
			out = append(out, cur)
			cur, bytes, limit = nil, 0, capBytes
		}
		cur = append(cur, i)
		bytes += b
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Reducer all-reduces (averages) gradients bucket by bucket as they become
// ready, DDP's scheme: when the last gradient of a bucket is marked ready
// (and every earlier bucket has gone), the bucket's collectives are queued
// on the communication stream, while the backward pass goes on computing
// the next ones. Buckets go in the same order on every rank.
type Reducer struct {
	comm     *Comm
	buckets  [][]int
	bucketOf []int
	left     []int
	bufs     []Buffer
	next     int // the next bucket to launch
}

// NewReducer buckets the parameters of the given sizes.
func NewReducer(comm *Comm, sizes []int, capBytes int) *Reducer {
	r := &Reducer{comm: comm, buckets: AssignBuckets(sizes, capBytes, min(capBytes, FirstBucketBytes)),
		bucketOf: make([]int, len(sizes)), bufs: make([]Buffer, len(sizes))}
	for k, b := range r.buckets {
		for _, i := range b {
			r.bucketOf[i] = k
		}
	}
	r.reset()
	return r
}

// Buckets lists the buckets (parameter indices).
func (r *Reducer) Buckets() [][]int { return r.buckets }

func (r *Reducer) reset() {
	r.left = make([]int, len(r.buckets))
	for k, b := range r.buckets {
		r.left[k] = len(b)
	}
	r.next = 0
}

// Ready marks gradient i ready in b (its compute queued before, on a GPU
// ordered by the caller before the communication stream's next work).
func (r *Reducer) Ready(i int, b Buffer) error {
	if i < 0 || i >= len(r.bufs) {
		return fmt.Errorf("dist: gradient %d of %d", i, len(r.bufs))
	}
	k := r.bucketOf[i]
	if r.left[k] == 0 {
		return fmt.Errorf("dist: gradient %d marked ready twice in a step", i)
	}
	r.bufs[i] = b
	r.left[k]--
	for r.next < len(r.buckets) && r.left[r.next] == 0 {
		if err := r.launch(r.next); err != nil {
			return err
		}
		r.next++
	}
	return nil
}

func (r *Reducer) launch(k int) error {
	bufs := make([]Buffer, len(r.buckets[k]))
	for j, i := range r.buckets[k] {
		bufs[j] = r.bufs[i]
	}
	if err := r.comm.AllReduceAvg(bufs); err != nil {
		return fmt.Errorf("dist: bucket %d: %w", k, err)
	}
	return nil
}

// Flush checks that every bucket was queued and readies the reducer for
// the next step. On a GPU the averaged gradients are there once the
// communication stream has passed this point.
func (r *Reducer) Flush() error {
	defer r.reset()
	if r.next != len(r.buckets) {
		return fmt.Errorf("dist: bucket %d of %d never got all its gradients", r.next, len(r.buckets))
	}
	return nil
}

// ReduceHost averages host gradients (the CPU trainer, whose backward pass
// hands them over all at once): each is marked ready in reverse order,
// pinned for the collectives.
func (r *Reducer) ReduceHost(grads [][]float32) error {
	var pin runtime.Pinner
	defer pin.Unpin()
	for i := len(grads) - 1; i >= 0; i-- {
		if len(grads[i]) > 0 {
			pin.Pin(&grads[i][0])
		}
		if err := r.Ready(i, HostBuffer(grads[i])); err != nil {
			return err
		}
	}
	return r.Flush()
}
