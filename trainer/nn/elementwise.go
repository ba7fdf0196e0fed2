package nn

// AddForward computes y = a + b (same length). y may alias a or b.
func AddForward(y, a, b []float32) {
	parallelChunks(len(y), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y[i] = a[i] + b[i]
		}
	})
}

// ChannelShape describes an (N, C, P) activation, P = H*W.
type ChannelShape struct {
	N, C, P int
}

func (s ChannelShape) Len() int { return s.N * s.C * s.P }

// AddChannelForward computes y[n,c,p] = x[n,c,p] + e[n,c] (a per-sample,
// per-channel bias such as a projected timestep embedding). y may alias x.
func AddChannelForward(y, x, e []float32, s ChannelShape) {
	parallelFor(s.N, func(_, n int) {
		for c := 0; c < s.C; c++ {
			off := (n*s.C + c) * s.P
			v := e[n*s.C+c]
			xs, ys := x[off:off+s.P], y[off:off+s.P]
			for i := range ys {
				ys[i] = xs[i] + v
			}
		}
	})
}

// AddChannelBackwardBias computes de[n,c] = sum_p dy[n,c,p]. de is
// overwritten. (dx is dy itself.)
func AddChannelBackwardBias(de, dy []float32, s ChannelShape) {
	for nc := 0; nc < s.N*s.C; nc++ {
		var a float32
		for _, v := range dy[nc*s.P : (nc+1)*s.P] {
			a += v
		}
		de[nc] = a
	}
}

// ConcatShape describes the channel concatenation of (N, CA, P) and
// (N, CB, P) into (N, CA+CB, P).
type ConcatShape struct {
	N, CA, CB, P int
}

// ConcatForward writes [a | b] along channels. y is overwritten.
func ConcatForward(y, a, b []float32, s ConcatShape) {
	la, lb := s.CA*s.P, s.CB*s.P
	for n := 0; n < s.N; n++ {
		copy(y[n*(la+lb):], a[n*la:(n+1)*la])
		copy(y[n*(la+lb)+la:], b[n*lb:(n+1)*lb])
	}
}

// ConcatBackward splits dy into da and db (either may be nil).
func ConcatBackward(da, db, dy []float32, s ConcatShape) {
	la, lb := s.CA*s.P, s.CB*s.P
	for n := 0; n < s.N; n++ {
		if da != nil {
			copy(da[n*la:(n+1)*la], dy[n*(la+lb):])
		}
		if db != nil {
			copy(db[n*lb:(n+1)*lb], dy[n*(la+lb)+la:])
		}
	}
}

// ResampleShape describes a nearest-neighbour 2x upsample of (N, C, H, W)
// to (N, C, 2H, 2W).
type ResampleShape struct {
	N, C, H, W int
}

// Upsample2xForward repeats each pixel into a 2x2 block. y is overwritten.
func Upsample2xForward(y, x []float32, s ResampleShape) {
	w2 := 2 * s.W
	parallelFor(s.N*s.C, func(_, nc int) {
		xs := x[nc*s.H*s.W : (nc+1)*s.H*s.W]
		ys := y[nc*4*s.H*s.W : (nc+1)*4*s.H*s.W]
		for i := 0; i < s.H; i++ {
			r0 := ys[(2*i)*w2 : (2*i+1)*w2]
			for j := 0; j < s.W; j++ {
				v := xs[i*s.W+j]
				r0[2*j] = v
				r0[2*j+1] = v
			}
			copy(ys[(2*i+1)*w2:(2*i+2)*w2], r0)
		}
	})
}

// Upsample2xBackward sums each 2x2 block of dy. dx is overwritten.
func Upsample2xBackward(dx, dy []float32, s ResampleShape) {
	w2 := 2 * s.W
	parallelFor(s.N*s.C, func(_, nc int) {
		dxs := dx[nc*s.H*s.W : (nc+1)*s.H*s.W]
		dys := dy[nc*4*s.H*s.W : (nc+1)*4*s.H*s.W]
		for i := 0; i < s.H; i++ {
			r0 := dys[(2*i)*w2 : (2*i+1)*w2]
			r1 := dys[(2*i+1)*w2 : (2*i+2)*w2]
			for j := 0; j < s.W; j++ {
				dxs[i*s.W+j] = r0[2*j] + r0[2*j+1] + r1[2*j] + r1[2*j+1]
			}
		}
	})
}
