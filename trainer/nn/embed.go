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
