package nn

// FrameMSEShape describes a mean-squared error over a clip batch (B, T, E),
// E = C*H*W values per frame, counting only frames t >= Skip (the loss over
// frames 2..T skips the conditioning frame with Skip = 1).
type FrameMSEShape struct {
	B, T, E, Skip int
}

func (s FrameMSEShape) count() int { return s.B * (s.T - s.Skip) * s.E }

// FrameMSE returns mean((pred-target)^2) over the counted frames.
func FrameMSE(pred, target []float32, s FrameMSEShape) float32 {
	var acc float64
	for b := 0; b < s.B; b++ {
		for t := s.Skip; t < s.T; t++ {
			off := (b*s.T + t) * s.E
			p, q := pred[off:off+s.E], target[off:off+s.E]
			for i := range p {
				d := float64(p[i]) - float64(q[i])
				acc += d * d
			}
		}
	}
	return float32(acc / float64(s.count()))
}

// FrameMSEBackward computes dpred = g * 2 (pred-target) / count on counted
// frames and 0 elsewhere. dpred is overwritten.
func FrameMSEBackward(dpred, pred, target []float32, g float32, s FrameMSEShape) {
	k := 2 * g / float32(s.count())
	for b := 0; b < s.B; b++ {
		for t := 0; t < s.T; t++ {
			off := (b*s.T + t) * s.E
			d := dpred[off : off+s.E]
			if t < s.Skip {
				zero(d)
				continue
			}
			p, q := pred[off:off+s.E], target[off:off+s.E]
			for i := range d {
				d[i] = k * (p[i] - q[i])
			}
		}
	}
}
