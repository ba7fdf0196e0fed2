package nn

import "math"

// expf is e^x in float32 (relative error about 2e-7): x = n ln2 + r with
// |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n in the exponent bits.
// n is rounded by adding and subtracting 1.5*2^23 (no call to math.Floor);
// its integer is then in k's low mantissa bits.
func expf(x float32) float32 {
	if x > 88 {
		return float32(math.Inf(1))
	}
	if x < -87 {
		return 0
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
		magic = 12582912 // 1.5 * 2^23
	)
	k := x*log2e + magic
	n := k - magic
	r := x - n*ln2hi - n*ln2lo
	p := float32(1.0 / 720)
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	return p * math.Float32frombits((math.Float32bits(k)-0x4B400000+127)<<23)
}

func sigmoid(x float32) float32 { return 1 / (1 + expf(-x)) }

// SiLUForward computes y = x * sigmoid(x). y may alias x.
func SiLUForward(y, x []float32) {
	parallelChunks(len(x), func(lo, hi int) {
		for i := lo + siluForwardVec(y[lo:hi], x[lo:hi]); i < hi; i++ {
			v := x[i]
			y[i] = v * sigmoid(v)
		}
	})
}

// SiLUBackward computes dx = dy * s(x) * (1 + x*(1-s(x))). dx is overwritten.
func SiLUBackward(dx, dy, x []float32) {
	parallelChunks(len(x), func(lo, hi int) {
		for i := lo + siluBackwardVec(dx[lo:hi], dy[lo:hi], x[lo:hi]); i < hi; i++ {
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
