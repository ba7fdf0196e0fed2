//go:build !amd64

package nn

var haveFMA = false

func sgemmKernel6x16(k int, a, b, c *float32) { panic("nn: no FMA kernel on this architecture") }

func sgemmKernel6x16C(k int, a, b, c *float32, ldc int, alpha, beta float32) {
	panic("nn: no FMA kernel on this architecture")
}
