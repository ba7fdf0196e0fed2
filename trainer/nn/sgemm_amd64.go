package nn

import "golang.org/x/sys/cpu"

//go:noescape
func sgemmKernel6x16(k int, a, b, c *float32)

//go:noescape
func sgemmKernel6x16C(k int, a, b, c *float32, ldc int, alpha, beta float32)

// haveFMA selects the AVX2/FMA micro-kernel.
var haveFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA
