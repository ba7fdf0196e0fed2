package nn

import "math"

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// SiLUForward computes y = x * sigmoid(x). y may alias x.
func SiLUForward(y, x []float32) {
	parallelChunks(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := x[i]
			y[i] = v * sigmoid(v)
		}
	})
}

// SiLUBackward computes dx = dy * s(x) * (1 + x*(1-s(x))). dx is overwritten.
func SiLUBackward(dx, dy, x []float32) {
	parallelChunks(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := x[i]
			s := sigmoid(v)
			dx[i] = dy[i] * s * (1 + v*(1-s))
		}
	})
}

// parallelChunks splits [0, n) into contiguous chunks for element-wise loops.
func parallelChunks(n int, body func(lo, hi int)) {
	const minChunk = 1 << 14
	nw := workers()
	if n < 2*minChunk || nw <= 1 {
		body(0, n)
		return
	}
	chunks := nw
	if n/chunks < minChunk {
		chunks = n / minChunk
	}
	size := (n + chunks - 1) / chunks
	parallelFor(chunks, func(_, c int) {
		lo := c * size
		hi := lo + size
		if hi > n {
			hi = n
		}
		if lo < hi {
			body(lo, hi)
		}
	})
}
