package gpu

import (
	"slices"
	"unsafe"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// adamChunk is the most floats one block of the multi-tensor AdamW
// kernels (sumsq_chunks, adamw_chunks) takes: 256 per thread.
const adamChunk = 1 << 16

// adamChunks is DeviceAdamW's chunk table on the device: one launch each
// for the norm and the update over all trainable tensors, instead of two
// per tensor (484 launches for the SD UNet's 242, most of them small).
type adamChunks struct {
	tab     *cuda.Tensor // 5 words per chunk (kernels/adamw.cu)
	partial *cuda.Tensor // float64 per chunk, stored as float32 pairs
	n       int          // chunks
	ptrs    []uintptr    // the addresses the table was built from
}

// chunkTable returns the table for o's tensors, rebuilt when one of them
// moved (it holds device addresses).
func (o *DeviceAdamW) chunkTable() (*adamChunks, error) {
	s := o.s
	var ptrs []uintptr
	for i, q := range s.trainable {
		ptrs = append(ptrs, s.weights[q.Name].Ptr(), s.wgrads[q.Name].Ptr(), o.m[i].Ptr(), o.v[i].Ptr())
	}
	if c := o.chunks; c != nil && slices.Equal(c.ptrs, ptrs) {
		return c, nil
	}
	o.freeChunks()
	var words []uint64
	for i, q := range s.trainable {
		n := s.weights[q.Name].Len()
		flag := uint64(0)
		if o.noDecay[i] {
			flag = 1 << 32
		}
		for lo := 0; lo < n; lo += adamChunk {
			off := uintptr(lo) * 4
			words = append(words, uint64(ptrs[4*i]+off), uint64(ptrs[4*i+1]+off), uint64(ptrs[4*i+2]+off), uint64(ptrs[4*i+3]+off),
				uint64(min(adamChunk, n-lo))|flag)
		}
	}
	c := &adamChunks{n: len(words) / 5, ptrs: ptrs}
	if c.n == 0 { // nothing trainable: a table for the buffers' sake
		words = make([]uint64, 5)
	}
	var err error
	if c.tab, err = s.dev.NewTensor(2 * len(words)); err != nil {
		return nil, err
	}
	if err = c.tab.Upload(unsafe.Slice((*float32)(unsafe.Pointer(&words[0])), 2*len(words))); err == nil {
		c.partial, err = s.dev.NewTensor(2 * max(c.n, 1))
	}
	if err != nil {
		c.tab.Free()
		return nil, err
	}
	o.chunks = c
	return c, nil
}

func (o *DeviceAdamW) freeChunks() {
	if c := o.chunks; c != nil {
		c.tab.Free()
		if c.partial != nil {
			c.partial.Free()
		}
		o.chunks = nil
	}
}
