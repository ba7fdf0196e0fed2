package nn

import "math"

//go:noescape
func siluForward8(n int, y, x, c *float32)

//go:noescape
func siluBackward8(n int, dx, dy, x, c *float32)

// siluConsts are the AVX2 kernels' constants (see silu_amd64.s).
var siluConsts = [13]float32{
	-87, 88, 1.44269504088896341, 12582912, 0.693359375, -2.12194440e-4, 1,
	math.Float32frombits(0x4B400000 - 127),
	1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5,
}

// siluForwardVec does y = silu(x) on the longest multiple of 8 and returns
// how many values it did (0 without AVX2/FMA).
func siluForwardVec(y, x []float32) int {
	n := len(x) &^ 7
	if !haveFMA || n == 0 {
		return 0
	}
	siluForward8(n, &y[0], &x[0], &siluConsts[0])
	return n
}

// siluBackwardVec is siluForwardVec for SiLUBackward.
func siluBackwardVec(dx, dy, x []float32) int {
	n := len(x) &^ 7
	if !haveFMA || n == 0 {
		return 0
	}
	siluBackward8(n, &dx[0], &dy[0], &x[0], &siluConsts[0])
	return n
}
