package shards

import (
	"sync"
	"sync/atomic"
)

// frameCache keeps decoded, resized frames (RGB planar, 8 bits a channel)
// so that the windows sharing a frame decode it once. With epoch sampling a
// frame belongs to up to FramesLength windows, so without a cache each
// frame is decoded that many times an epoch. The cache only fills (no
// eviction): under uniform sampling, keeping a fixed subset gives the same
// hit rate as an LRU, with no bookkeeping. It never changes values: every
// frame the loader yields goes through the same 8-bit quantization, cached
// or not.
type frameCache struct {
	mu     sync.RWMutex
	frames map[frameKey][]uint8
	left   atomic.Int64 // bytes still free
}

type frameKey struct {
	video *video
	frame int
}

func newFrameCache(budget int64) *frameCache {
	c := &frameCache{frames: map[frameKey][]uint8{}}
	c.left.Store(budget)
	return c
}

func (c *frameCache) get(k frameKey) []uint8 {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.frames[k]
}

func (c *frameCache) put(k frameKey, q []uint8) {
	if c == nil || c.left.Add(-int64(len(q))) < 0 {
		return
	}
	c.mu.Lock()
	if _, dup := c.frames[k]; dup {
		c.left.Add(int64(len(q)))
	} else {
		c.frames[k] = q
	}
	c.mu.Unlock()
}

// quantize maps values in [-1, 1] to 0..255, rounding.
func quantize(dst []uint8, src []float32) {
	for i, v := range src {
		dst[i] = uint8((v+1)*127.5 + 0.5)
	}
}

// dequantize is quantize's inverse onto the 8-bit grid.
func dequantize(dst []float32, src []uint8) {
	for i, q := range src {
		dst[i] = float32(q)/127.5 - 1
	}
}
