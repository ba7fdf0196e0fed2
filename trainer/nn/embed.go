package nn

import "math"

// TimestepEmbedding writes the sinusoidal embedding of each timestep into y
// (N, dim): y[n, i] = cos(t_n * f_i), y[n, half+i] = sin(t_n * f_i) with
// f_i = 10000^(-i/half), half = dim/2 (an odd dim leaves a trailing zero).
// Timesteps are data, not parameters, so there is no backward function.
func TimestepEmbedding(y, t []float32, dim int) {
	half := dim / 2
	for n, tv := range t {
		row := y[n*dim : (n+1)*dim]
		for i := 0; i < half; i++ {
			f := math.Exp(-math.Log(10000) * float64(i) / float64(half))
			a := float64(tv) * f
			row[i] = float32(math.Cos(a))
			row[half+i] = float32(math.Sin(a))
		}
		if dim%2 == 1 {
			row[dim-1] = 0
		}
	}
}

// SinusoidalShape describes diffusers' Timesteps projection (N) -> (N, Dim):
// with half = Dim/2 and f_i = exp(-ln(10000) * i / (half - FreqShift)),
// the row is [sin(t f_i) | cos(t f_i)], or [cos | sin] with FlipSinToCos
// (Stable Diffusion). The arithmetic follows PyTorch's float32 steps so the
// embedding matches diffusers' to the last bit or so.
type SinusoidalShape struct {
	N, Dim       int
	FlipSinToCos bool
	FreqShift    float64
}

// SinusoidalEmbedding writes the embedding of each timestep into y (N, Dim).
// An odd Dim leaves a trailing zero.
func SinusoidalEmbedding(y, t []float32, s SinusoidalShape) {
	half := s.Dim / 2
	freqs := make([]float32, half)
	ln := float32(-math.Log(10000))
	div := float32(float64(half) - s.FreqShift)
	for i := range freqs {
		freqs[i] = float32(math.Exp(float64(ln * float32(i) / div)))
	}
	for n, tv := range t[:s.N] {
		row := y[n*s.Dim : (n+1)*s.Dim]
		sinAt, cosAt := 0, half
		if s.FlipSinToCos {
			sinAt, cosAt = half, 0
		}
		for i, f := range freqs {
			a := float64(tv * f)
			row[sinAt+i] = float32(math.Sin(a))
			row[cosAt+i] = float32(math.Cos(a))
		}
		if s.Dim%2 == 1 {
			row[s.Dim-1] = 0
		}
	}
}
