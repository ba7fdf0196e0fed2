package trainer

import (
	"fmt"
	"math"
	"sort"

	"github.com/timelapse-ml/pipeline/shards"
)

// Quality compares generated frames with real validation frames at the
// model's resolution (before any upscaling or palette quantisation for
// the GIF), on two statistics in 8-bit levels (0..255):
//
//   - high frequency: the mean absolute 4-neighbour Laplacian per value
//     (edges replicated), which single-pixel speckle drives up and blur
//     drives down;
//   - frame change: the mean absolute difference between consecutive
//     frames.
//
// The generated statistics leave out frame 0 (the real still); the real
// ones use every frame of every validation video (the training videos
// when there is no validation split).
type Quality struct {
	Resolution      int     `json:"resolution"`
	GeneratedFrames int     `json:"generated_frames"`
	RealFrames      int     `json:"real_frames"`
	GeneratedHF     float64 `json:"generated_hf"`
	RealHF          float64 `json:"real_hf"`
	// HFRatio is GeneratedHF / RealHF: near 1 when the generated frames
	// are as sharp as the data, well above 1 when speckled.
	HFRatio         float64 `json:"hf_ratio"`
	GeneratedChange float64 `json:"generated_change"`
	RealChange      float64 `json:"real_change"`
	// ChangeRatio is GeneratedChange / RealChange.
	ChangeRatio float64 `json:"change_ratio"`
}

// levels converts [-1, 1] differences to 8-bit levels.
const levels = 127.5

// HighFrequency is the mean absolute Laplacian, in 8-bit levels, of n
// frames (C, H, W) in [-1, 1] stored one after another; values are clamped
// to [-1, 1] first, as the images written from them are.
func HighFrequency(x []float32, n, c, h, w int) float64 {
	if n <= 0 || len(x) != n*c*h*w {
		return math.NaN()
	}
	at := func(p []float32, y, xx int) float64 {
		y = min(max(y, 0), h-1)
		xx = min(max(xx, 0), w-1)
		return clamp1(p[y*w+xx])
	}
	var sum float64
	for pl := 0; pl < n*c; pl++ {
		p := x[pl*h*w : (pl+1)*h*w]
		for y := range h {
			for xx := range w {
				l := 4*at(p, y, xx) - at(p, y-1, xx) - at(p, y+1, xx) - at(p, y, xx-1) - at(p, y, xx+1)
				sum += math.Abs(l)
			}
		}
	}
	return sum / float64(len(x)) * levels
}

// FrameChange is the mean absolute difference, in 8-bit levels, between
// consecutive frames of n frames of frameLen values each (NaN for fewer
// than two frames).
func FrameChange(x []float32, n, frameLen int) float64 {
	if n < 2 || len(x) != n*frameLen {
		return math.NaN()
	}
	var sum float64
	for f := 1; f < n; f++ {
		a, b := x[(f-1)*frameLen:f*frameLen], x[f*frameLen:(f+1)*frameLen]
		for i := range a {
			sum += math.Abs(clamp1(b[i]) - clamp1(a[i]))
		}
	}
	return sum / float64((n-1)*frameLen) * levels
}

func clamp1(v float32) float64 { return math.Max(-1, math.Min(1, float64(v))) }

// realStats returns the high-frequency statistic and the frame change of
// the validation videos of a shards folder at resolution res, and the
// number of frames they cover.
func realStats(shardsDir string, res int) (hf, change float64, frames int, err error) {
	ds, err := shards.Open(shardsDir)
	if err != nil {
		return 0, 0, 0, err
	}
	defer ds.Close()
	vids := ds.Videos(shards.SplitVal)
	if len(vids) == 0 {
		vids = ds.Videos(shards.SplitTrain)
	}
	if len(vids) == 0 {
		return 0, 0, 0, fmt.Errorf("shards %s hold no video", shardsDir)
	}
	sort.Slice(vids, func(i, j int) bool { return vids[i].ID < vids[j].ID })
	fl := 3 * res * res
	var hfSum, chSum float64
	pairs := 0
	for _, v := range vids {
		clip := make([]float32, v.Frames*fl)
		for f := range v.Frames {
			img, err := ds.Frame(v.ID, f+1)
			if err != nil {
				return 0, 0, 0, err
			}
			shards.ToTensor(clip[f*fl:(f+1)*fl], img, res)
		}
		hfSum += HighFrequency(clip, v.Frames, 3, res, res) * float64(v.Frames)
		frames += v.Frames
		if v.Frames > 1 {
			chSum += FrameChange(clip, v.Frames, fl) * float64(v.Frames-1)
			pairs += v.Frames - 1
		}
	}
	change = math.NaN()
	if pairs > 0 {
		change = chSum / float64(pairs)
	}
	return hfSum / float64(frames), change, frames, nil
}

// MeasureQuality compares a generated clip x (t frames of (3, res, res),
// frame 0 the conditioning still) with the validation videos of shardsDir.
func MeasureQuality(x []float32, t, res int, shardsDir string) (*Quality, error) {
	if t < 2 || len(x) != t*3*res*res {
		return nil, fmt.Errorf("quality: %d values are not %d frames of 3x%dx%d", len(x), t, res, res)
	}
	rhf, rch, n, err := realStats(shardsDir, res)
	if err != nil {
		return nil, fmt.Errorf("quality: %w", err)
	}
	fl := 3 * res * res
	gen := x[fl:]
	q := &Quality{
		Resolution: res, GeneratedFrames: t - 1, RealFrames: n,
		GeneratedHF: HighFrequency(gen, t-1, 3, res, res), RealHF: rhf,
		GeneratedChange: FrameChange(gen, t-1, fl), RealChange: rch,
	}
	q.HFRatio = q.GeneratedHF / q.RealHF
	q.ChangeRatio = q.GeneratedChange / q.RealChange
	// JSON has no NaN: a statistic that cannot be measured (a single
	// generated frame, one-frame videos) is written as 0.
	for _, v := range []*float64{&q.GeneratedChange, &q.RealChange, &q.ChangeRatio, &q.HFRatio} {
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			*v = 0
		}
	}
	return q, nil
}
