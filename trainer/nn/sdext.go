package nn

import "fmt"

// Ops of Stable Diffusion's VAE and CLIP text encoder that the UNet does
// not use: quick-GELU and GELU over a tensor, zero padding at the end of
// each spatial axis (the VAE downsampler's asymmetric (0,1,0,1) padding),
// and CLIP's token plus position embedding.

// QuickGELUForward computes y = x * sigmoid(1.702 x) (CLIP's activation).
// y is overwritten.
func QuickGELUForward(y, x []float32) {
	parallelRange(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y[i] = x[i] * sigmoid(1.702*x[i])
		}
	})
}

// QuickGELUBackward computes dx = dy * d/dx[x sigmoid(1.702x)]. dx is
// overwritten.
func QuickGELUBackward(dx, dy, x []float32) {
	parallelRange(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := sigmoid(1.702 * x[i])
			dx[i] = dy[i] * (s + 1.702*x[i]*s*(1-s))
		}
	})
}

// GELUForward computes the exact (erf) GELU element-wise. y is overwritten.
func GELUForward(y, x []float32) {
	parallelRange(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y[i] = float32(GELU(float64(x[i])))
		}
	})
}

// GELUBackward computes dx = dy * GELU'(x). dx is overwritten.
func GELUBackward(dx, dy, x []float32) {
	parallelRange(len(x), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dx[i] = float32(float64(dy[i]) * geluGrad(float64(x[i])))
		}
	})
}

// PadEndShape describes padding (N, C, H, W) with zeros to (N, C, H+1, W+1):
// one row at the bottom and one column at the right, as SD's VAE pads
// before its stride-2 convolutions.
type PadEndShape struct{ N, C, H, W int }

// InLen and OutLen are the element counts.
func (s PadEndShape) InLen() int  { return s.N * s.C * s.H * s.W }
func (s PadEndShape) OutLen() int { return s.N * s.C * (s.H + 1) * (s.W + 1) }

// PadEndForward writes the padded x into y (y is overwritten).
func PadEndForward(y, x []float32, s PadEndShape) {
	w1 := s.W + 1
	for p := 0; p < s.N*s.C; p++ {
		src, dst := x[p*s.H*s.W:], y[p*(s.H+1)*w1:]
		for i := 0; i < s.H; i++ {
			copy(dst[i*w1:i*w1+s.W], src[i*s.W:(i+1)*s.W])
			dst[i*w1+s.W] = 0
		}
		zero(dst[s.H*w1 : (s.H+1)*w1])
	}
}

// PadEndBackward crops dy back to x's shape (dx is overwritten).
func PadEndBackward(dx, dy []float32, s PadEndShape) {
	w1 := s.W + 1
	for p := 0; p < s.N*s.C; p++ {
		src, dst := dy[p*(s.H+1)*w1:], dx[p*s.H*s.W:]
		for i := 0; i < s.H; i++ {
			copy(dst[i*s.W:(i+1)*s.W], src[i*w1:i*w1+s.W])
		}
	}
}

// TokenEmbeddingShape describes CLIP's embeddings: N sequences of L token
// ids (stored as float32) into (N, L, D) = token[id] + position[l], from a
// (Vocab, D) token table and an (at least L, D) position table.
type TokenEmbeddingShape struct{ N, L, D, Vocab int }

// TokenEmbeddingForward writes the embeddings of ids into y (overwritten).
// An id outside [0, Vocab) is an error.
func TokenEmbeddingForward(y, ids, token, position []float32, s TokenEmbeddingShape) error {
	for n := 0; n < s.N; n++ {
		for l := 0; l < s.L; l++ {
			f := ids[n*s.L+l]
			id := int(f)
			if float32(id) != f || id < 0 || id >= s.Vocab {
				return fmt.Errorf("nn: token embedding: id %v at sequence %d position %d is not in [0, %d)", f, n, l, s.Vocab)
			}
			row, dst := token[id*s.D:(id+1)*s.D], y[(n*s.L+l)*s.D:]
			pos := position[l*s.D:]
			for d := 0; d < s.D; d++ {
				dst[d] = row[d] + pos[d]
			}
		}
	}
	return nil
}

// parallelRange runs body over [0, n) in chunks on the worker pool.
func parallelRange(n int, body func(lo, hi int)) {
	const chunk = 1 << 14
	parallelFor((n+chunk-1)/chunk, func(_, c int) {
		body(c*chunk, min(n, (c+1)*chunk))
	})
}
