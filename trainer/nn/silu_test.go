package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func siluBenchData(n int) (x, y, dy []float32) {
	r := rand.New(rand.NewPCG(1, 2))
	x, y, dy = make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 3)
		dy[i] = float32(r.NormFloat64())
	}
	return
}

func BenchmarkSiLUForward(b *testing.B) {
	x, y, _ := siluBenchData(1 << 18)
	b.SetBytes(4 << 18)
	for b.Loop() {
		SiLUForward(y, x)
	}
}

func BenchmarkSiLUBackward(b *testing.B) {
	x, dx, dy := siluBenchData(1 << 18)
	b.SetBytes(4 << 18)
	for b.Loop() {
		SiLUBackward(dx, dy, x)
	}
}

// TestSiLUMatchesFloat64: the vector kernels (and the scalar tail) agree
// with x*sigmoid(x) and its derivative in float64, from -100 to 100 and on
// lengths that leave a tail.
func TestSiLUMatchesFloat64(t *testing.T) {
	for _, n := range []int{1, 7, 8, 13, 1000, 1 << 15} {
		x, _, dy := siluBenchData(n)
		x[0] = -100
		if n > 1 {
			x[n-1] = 100
		}
		for i := 1; i < n-1 && i < 400; i++ {
			x[i] = float32(i-200) / 2 // -100 .. 100
		}
		y, dx := make([]float32, n), make([]float32, n)
		SiLUForward(y, x)
		SiLUBackward(dx, dy, x)
		for i, v := range x {
			s := 1 / (1 + math.Exp(-float64(v)))
			wantY := float64(v) * s
			wantDX := float64(dy[i]) * s * (1 + float64(v)*(1-s))
			if d := math.Abs(float64(y[i]) - wantY); d > 1e-6*math.Max(1, math.Abs(wantY)) {
				t.Fatalf("n %d: silu(%g) = %g, want %g", n, v, y[i], wantY)
			}
			if d := math.Abs(float64(dx[i]) - wantDX); d > 1e-6*math.Max(1, math.Abs(wantDX)) {
				t.Fatalf("n %d: silu'(%g)*%g = %g, want %g", n, v, dy[i], dx[i], wantDX)
			}
		}
	}
}

func benchConvBackwardData(b *testing.B, s Conv2DShape, f func(dx, dy, w []float32, s Conv2DShape)) {
	dy, w, dx := make([]float32, s.OutLen()), make([]float32, s.WeightLen()), make([]float32, s.InLen())
	for i := range dy {
		dy[i] = float32(i%7) - 3
	}
	for b.Loop() {
		f(dx, dy, w, s)
	}
}

// BenchmarkConv2DBackwardData: the flipped-kernel path against col2im on
// the tiny model's 3x3 convs (a 16-frame batch of 2 clips).
func BenchmarkConv2DBackwardData(b *testing.B) {
	for _, s := range []Conv2DShape{
		{N: 32, C: 16, H: 32, W: 32, K: 16, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 32, C: 32, H: 16, W: 16, K: 32, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 32, C: 64, H: 8, W: 8, K: 32, KH: 3, KW: 3, Stride: 1, Pad: 1},
	} {
		b.Run(fmt.Sprintf("C%dK%d_%dpx/chosen", s.C, s.K, s.H), func(b *testing.B) { benchConvBackwardData(b, s, Conv2DBackwardData) })
		b.Run(fmt.Sprintf("C%dK%d_%dpx/col2im", s.C, s.K, s.H), func(b *testing.B) { benchConvBackwardData(b, s, conv2DBackwardDataCol2im) })
	}
}
