package trainer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// TestRatioByTimestep breaks the validation loss of a trained pipeline
// workdir down by timestep and by frame index, for the video model and for
// the backbone alone (temporal layers at identity) on the same clips and
// noise: where the temporal layers gain (issue 19). A measurement, not a
// check: it runs only when RATIO_DIR names a workdir holding pretrain/,
// train/ and pack/. RATIO_CLIPS sets the clip count (default 32), RATIO_TS
// the timesteps (comma-separated).
//
//	RATIO_DIR=work/default go test ./trainer -run TestRatioByTimestep -v
func TestRatioByTimestep(t *testing.T) {
	dir := os.Getenv("RATIO_DIR")
	if dir == "" {
		t.Skip("RATIO_DIR not set")
	}
	nClips := 32
	if s := os.Getenv("RATIO_CLIPS"); s != "" {
		nClips, _ = strconv.Atoi(s)
	}
	p, meta, err := LoadVideoModel(filepath.Join(dir, "train", TemporalFile), filepath.Join(dir, "pretrain", BackboneFile))
	if err != nil {
		t.Fatal(err)
	}
	res, T := 32, 8
	fmt.Sscan(meta[MetaResolution], &res)
	fmt.Sscan(meta[MetaFramesLength], &T)
	bb := p.Clone()
	bb.InitTemporal(1)
	fv, err := model.BuildForward(p, true, 1, T, res, res)
	if err != nil {
		t.Fatal(err)
	}
	defer fv.Close()
	fb, err := model.BuildForward(bb, true, 1, T, res, res)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	sched, _ := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	ds, err := shards.Open(filepath.Join(dir, "pack"))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ld, err := shards.NewLoader(ds, shards.LoaderOptions{Split: shards.SplitVal, FramesLength: T, Resolution: res,
		Batch: 1, Seed: 3, Sampling: shards.SamplingEpoch})
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	ts := []int{0, 25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999}
	if s := os.Getenv("RATIO_TS"); s != "" {
		ts = nil
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("RATIO_TS: %v", err)
			}
			ts = append(ts, v)
		}
	}
	l := diffusion.Layout{B: 1, T: T, C: 3, H: res, W: res}
	fl := l.FrameLen()
	n := T * fl
	noise, noisy, target := make([]float32, n), make([]float32, n), make([]float32, n)
	in := make([]float32, l.InputLen())
	// per timestep, per frame: summed squared error of each model
	type acc struct{ v, b [][]float64 }
	a := acc{make([][]float64, len(ts)), make([][]float64, len(ts))}
	for i := range ts {
		a.v[i], a.b[i] = make([]float64, T), make([]float64, T)
	}
	rnd := rand.New(rand.NewPCG(11, 12))
	for range nClips {
		b, err := ld.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		clean := b.Data
		for i := range noise {
			noise[i] = float32(rnd.NormFloat64())
		}
		for k, tt := range ts {
			steps := []int{tt}
			if err := sched.QSample(noisy, clean, noise, steps, n); err != nil {
				t.Fatal(err)
			}
			velocity(target, clean, noise, steps, n, sched)
			if err := diffusion.AssembleInput(in, noisy, diffusion.FirstFrames(clean, l), l, diffusion.FirstFrameKnown); err != nil {
				t.Fatal(err)
			}
			tsf := diffusion.FrameTimesteps(steps, T)
			for m, g := range []*model.ForwardGraph{fv, fb} {
				pred, err := g.Predict(in, tsf)
				if err != nil {
					t.Fatal(err)
				}
				dst := a.v[k]
				if m == 1 {
					dst = a.b[k]
				}
				for f := 1; f < T; f++ {
					var s float64
					for j := f * fl; j < (f+1)*fl; j++ {
						d := float64(pred[j] - target[j])
						s += d * d
					}
					dst[f] += s / float64(fl) / float64(nClips)
				}
			}
		}
	}
	var sv, sb float64
	var sb2 strings.Builder
	fmt.Fprintf(&sb2, "| t | video | backbone | ratio | ratio per frame 1..%d |\n|---:|---:|---:|---:|---|\n", T-1)
	for k, tt := range ts {
		var v, bk float64
		var per []string
		for f := 1; f < T; f++ {
			v += a.v[k][f] / float64(T-1)
			bk += a.b[k][f] / float64(T-1)
			per = append(per, fmt.Sprintf("%.2f", a.v[k][f]/a.b[k][f]))
		}
		sv += v
		sb += bk
		fmt.Fprintf(&sb2, "| %d | %.5f | %.5f | %.3f | %s |\n", tt, v, bk, v/bk, strings.Join(per, " "))
	}
	fmt.Fprintf(&sb2, "| mean of rows | %.5f | %.5f | %.3f | |\n", sv/float64(len(ts)), sb/float64(len(ts)), sv/sb)
	t.Logf("%d validation clips of %d frames at %d px, %s\n%s", nClips, T, res, dir, sb2.String())
}

// TestFramePredictability measures how well a validation frame is predicted
// by its neighbours at the training resolution: the rms (in [-1, 1] units)
// of x_f - x_0 (the conditioning frame), x_f - x_{f-1} and of
// x_f - (x_{f-1} + x_{f+1})/2 (linear interpolation), against the noise
// level sqrt(1 - abar_t) of the schedule (issue 19). RATIO_DIR as above;
// RATIO_RES (default 32).
func TestFramePredictability(t *testing.T) {
	dir := os.Getenv("RATIO_DIR")
	if dir == "" {
		t.Skip("RATIO_DIR not set")
	}
	res := 32
	if s := os.Getenv("RATIO_RES"); s != "" {
		res, _ = strconv.Atoi(s)
	}
	ds, err := shards.Open(filepath.Join(dir, "pack"))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	fl := 3 * res * res
	var d0, d1, di, n0, n1, ni float64
	for _, v := range ds.Videos(shards.SplitVal) {
		frames := make([][]float32, v.Frames)
		for f := range frames {
			img, err := ds.Frame(v.ID, f+1)
			if err != nil {
				t.Fatal(err)
			}
			frames[f] = make([]float32, fl)
			shards.ToTensor(frames[f], img, res)
		}
		for f := 1; f < len(frames); f++ {
			for j := range fl {
				d := float64(frames[f][j] - frames[f-1][j])
				d1 += d * d
				if f < 8 {
					d = float64(frames[f][j] - frames[0][j])
					d0 += d * d
					n0++
				}
				if f+1 < len(frames) {
					d = float64(frames[f][j]) - 0.5*float64(frames[f-1][j]+frames[f+1][j])
					di += d * d
					ni++
				}
			}
			n1 += float64(fl)
		}
	}
	sched, _ := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	var sig []string
	for _, tt := range []int{0, 5, 10, 25, 50, 100} {
		sig = append(sig, fmt.Sprintf("t=%d: %.4f", tt, math.Sqrt(1-sched.AlphaBar[tt])))
	}
	t.Logf("%d px: rms x_f-x_0 (f<8) %.4f, x_f-x_{f-1} %.4f, x_f-interp %.4f; noise %s", res,
		math.Sqrt(d0/n0), math.Sqrt(d1/n1), math.Sqrt(di/ni), strings.Join(sig, ", "))
}

// TestSampleChangeByFrame samples the default's clip (the still of Sample,
// 25 frames, 20 DDIM steps, seed 0) from a trained workdir and prints the
// frame change per frame index, the mean of frames 1.., and the same of
// an 8-frame sample (the training length), against the real validation
// frames (issue 19's frame-change ratio). RATIO_DIR as above.
func TestSampleChangeByFrame(t *testing.T) {
	dir := os.Getenv("RATIO_DIR")
	if dir == "" {
		t.Skip("RATIO_DIR not set")
	}
	p, meta, err := LoadVideoModel(filepath.Join(dir, "train", TemporalFile), filepath.Join(dir, "pretrain", BackboneFile))
	if err != nil {
		t.Fatal(err)
	}
	res := 32
	fmt.Sscan(meta[MetaResolution], &res)
	shardsDir := filepath.Join(dir, "pack")
	cond, _, err := stillFrame(SampleOptions{Shards: shardsDir}, res)
	if err != nil {
		t.Fatal(err)
	}
	_, rch, _, err := realStats(shardsDir, res)
	if err != nil {
		t.Fatal(err)
	}
	sched, _ := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	fl := 3 * res * res
	for _, frames := range []int{25, 8} {
		fg, err := model.BuildForward(p, true, 1, frames, res, res)
		if err != nil {
			t.Fatal(err)
		}
		l := diffusion.Layout{B: 1, T: frames, C: 3, H: res, W: res}
		x, err := diffusion.SampleDDIM(context.Background(), sched, epsFromV(fg.Predict, sched, 3, res*res), cond, l, diffusion.DDIMOptions{Steps: 20})
		fg.Close()
		if err != nil {
			t.Fatal(err)
		}
		var per []string
		for f := 1; f < frames; f++ {
			per = append(per, fmt.Sprintf("%.1f", FrameChange(x[(f-1)*fl:(f+1)*fl], 2, fl)))
		}
		ch := FrameChange(x[fl:], frames-1, fl)
		t.Logf("%d frames: change %.2f (real %.2f, ratio %.2f); per frame f-1 -> f: %s", frames, ch, rch, ch/rch, strings.Join(per, " "))
	}
	// initial noise partly shared by the frames (the model trained on
	// independent noise)
	rhf, _, _, _ := realStats(shardsDir, res)
	fg, err := model.BuildForward(p, true, 1, 25, res, res)
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	l := diffusion.Layout{B: 1, T: 25, C: 3, H: res, W: res}
	for _, sh := range []float64{0.5, 0.8, 0.95, 1} {
		x := sampleCandidate(t, sched, fg.Predict, cond, l, candOptions{steps: 20, spacing: "linspace", clip: true, viaEps: true, shared: sh})
		hf, ch := HighFrequency(x[fl:], 24, 3, res, res), FrameChange(x[fl:], 24, fl)
		t.Logf("initial noise %.0f%% shared: hf ratio %.2f, change ratio %.2f", 100*sh, hf/rhf, ch/rch)
	}
}
