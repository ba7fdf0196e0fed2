package synth

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// plan is the frame layout of a video: which rendered frames reach the
// encoder, where keyframes go, and the frozen spans in encoder frame numbers.
type plan struct {
	n         int   // rendered frames
	headLast  int   // last frame of the frozen head (-1: none)
	tailFirst int   // first frame of the frozen tail (n: none)
	kept      []int // rendered frame numbers that reach the encoder, in order (all unless VFR)
	vfrA      int   // VFR drop pattern: frame i is dropped when (i*vfrA+vfrB)%7 < 2
	vfrB      int
	gop       int // keyframe interval in the motion span, in rendered frames
}

const streamVFR = 100

func newPlan(spec Spec) plan {
	n := spec.Frames()
	pl := plan{n: n, headLast: -1, tailFirst: n, gop: max(1, int(math.Round(2*spec.FPS)))}
	const eps = 1e-9
	for i := 0; i < n; i++ {
		t := float64(i) / spec.FPS
		if spec.FrozenHead > 0 && t <= spec.FrozenHead+eps {
			pl.headLast = i
		}
		if spec.FrozenTail > 0 && t >= spec.Seconds-spec.FrozenTail-eps && pl.tailFirst == n {
			pl.tailFirst = i
		}
	}
	if spec.VFR {
		r := newRNG(spec.Seed, streamVFR)
		pl.vfrA = 1 + r.intn(6)
		pl.vfrB = r.intn(7)
	}
	for i := 0; i < n; i++ {
		if pl.keeps(i) {
			pl.kept = append(pl.kept, i)
		}
	}
	return pl
}

// keeps reports whether rendered frame i reaches the encoder. VFR drops two
// frames in seven of the motion span in a seed-dependent pattern, so gaps
// between timestamps vary from one to three frame intervals; frozen spans
// keep every frame.
func (pl plan) keeps(i int) bool {
	if pl.vfrA == 0 || i <= pl.headLast || i >= pl.tailFirst {
		return true
	}
	return (i*pl.vfrA+pl.vfrB)%7 >= 2
}

func (pl plan) selectFilter() string {
	return fmt.Sprintf(`select=lte(n\,%d)+gte(n\,%d)+gte(mod(n*%d+%d\,7)\,2)`, pl.headLast, pl.tailFirst, pl.vfrA, pl.vfrB)
}

// keyFrames returns the rendered frames that start a GOP: the first, the
// first after the head, every gop frames of the motion span after that, and
// the first of the tail. A keyframe right after each frozen span keeps
// B-frames of the span from predicting from moving frames.
func (pl plan) keyFrames() []int {
	keys := []int{0}
	first := pl.headLast + 1
	if first == 0 {
		first = pl.gop
	}
	for k := first; k < pl.tailFirst; k += pl.gop {
		keys = append(keys, k)
	}
	if pl.tailFirst > 0 && pl.tailFirst < pl.n {
		keys = append(keys, pl.tailFirst)
	}
	return keys
}

// keyTimes formats keyFrames as ffmpeg's -force_key_frames list of times.
// ffmpeg rounds each time to the nearest frame, so microseconds suffice.
func (pl plan) keyTimes(fps float64) string {
	var b strings.Builder
	for j, k := range pl.keyFrames() {
		if j > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(k)/fps, 'f', 6, 64))
	}
	return b.String()
}

// encIndex returns the encoder's frame number of rendered frame i (which
// must be kept).
func (pl plan) encIndex(i int) int {
	lo, hi := 0, len(pl.kept)
	for lo < hi {
		m := (lo + hi) / 2
		if pl.kept[m] < i {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// zones returns x264 zones coding all but the first frame of each frozen
// span at QP 51, in encoder frame numbers ("" when there are none).
func (pl plan) zones() string {
	var z []string
	if pl.headLast >= 1 {
		z = append(z, fmt.Sprintf("1,%d,q=51", pl.encIndex(pl.headLast)))
	}
	if pl.tailFirst+1 < pl.n {
		z = append(z, fmt.Sprintf("%d,%d,q=51", pl.encIndex(pl.tailFirst)+1, len(pl.kept)-1))
	}
	return strings.Join(z, "/")
}
