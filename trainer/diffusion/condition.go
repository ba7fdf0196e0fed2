package diffusion

import "fmt"

// Layout is the shape of a clip batch (B, T, C, H, W).
type Layout struct {
	B, T, C, H, W int
}

// Frames is B*T, the model's batch of frames.
func (l Layout) Frames() int { return l.B * l.T }

// FrameLen is C*H*W.
func (l Layout) FrameLen() int { return l.C * l.H * l.W }

// Len is the number of values of a clip batch.
func (l Layout) Len() int { return l.B * l.T * l.FrameLen() }

// InputChannels is the model input width for C image channels: the noisy
// frame, the conditioning frame and the mask.
func InputChannels(c int) int { return 2*c + 1 }

// InputLen is the number of values of an assembled input.
func (l Layout) InputLen() int { return l.B * l.T * InputChannels(l.C) * l.H * l.W }

func (l Layout) validate() error {
	if l.B <= 0 || l.T <= 0 || l.C <= 0 || l.H <= 0 || l.W <= 0 {
		return fmt.Errorf("diffusion: bad layout %+v", l)
	}
	return nil
}

// AssembleInput writes the model input (B*T, 2C+1, H, W): for frame t of
// clip b, the channels are noisy[b,t] (C), cond[b] (C, the clean
// conditioning frame, the same for every frame of the clip) and a mask
// channel that is 1 on frames listed in known (the frame cond is; frame 0
// for image-to-video) and 0 elsewhere. noisy is (B, T, C, H, W), cond is
// (B, C, H, W).
func AssembleInput(dst, noisy, cond []float32, l Layout, known func(t int) bool) error {
	if err := l.validate(); err != nil {
		return err
	}
	fl := l.FrameLen()
	if len(noisy) != l.Len() || len(cond) != l.B*fl || len(dst) != l.InputLen() {
		return fmt.Errorf("diffusion: assemble input %+v: noisy %d (want %d), cond %d (want %d), dst %d (want %d)",
			l, len(noisy), l.Len(), len(cond), l.B*fl, len(dst), l.InputLen())
	}
	hw := l.H * l.W
	il := InputChannels(l.C) * hw
	for b := 0; b < l.B; b++ {
		c := cond[b*fl : (b+1)*fl]
		for t := 0; t < l.T; t++ {
			f := b*l.T + t
			d := dst[f*il : (f+1)*il]
			copy(d, noisy[f*fl:(f+1)*fl])
			copy(d[fl:], c)
			m := d[2*fl:]
			var v float32
			if known != nil && known(t) {
				v = 1
			}
			for i := range m {
				m[i] = v
			}
		}
	}
	return nil
}

// FirstFrameKnown marks frame 0 as the conditioning frame (video training
// and sampling).
func FirstFrameKnown(t int) bool { return t == 0 }

// NoneKnown marks no frame (backbone pretraining on a frame conditioned on
// another frame of the same video).
func NoneKnown(int) bool { return false }

// FirstFrames copies frame 0 of each clip of x (B, T, C, H, W) into a
// (B, C, H, W) slice.
func FirstFrames(x []float32, l Layout) []float32 {
	fl := l.FrameLen()
	out := make([]float32, l.B*fl)
	for b := 0; b < l.B; b++ {
		copy(out[b*fl:(b+1)*fl], x[b*l.T*fl:])
	}
	return out
}

// FrameTimesteps expands one timestep per clip into one float per frame,
// the model's timestep input.
func FrameTimesteps(t []int, frames int) []float32 {
	out := make([]float32, len(t)*frames)
	for b, v := range t {
		for i := 0; i < frames; i++ {
			out[b*frames+i] = float32(v)
		}
	}
	return out
}
