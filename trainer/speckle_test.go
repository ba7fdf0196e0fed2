package trainer

import (
	"context"
	"fmt"
	"image"
	"image/gif"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/shards"
	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/media"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// TestSpeckleCandidates measures the high-frequency statistic of clips
// sampled from a trained pipeline workdir under each candidate cause of
// issue 19. It is a measurement, not a check: it runs only when
// SPECKLE_DIR names a workdir holding pretrain/, train/ and pack/.
//
//	SPECKLE_DIR=work/default go test ./trainer -run TestSpeckleCandidates -v
func TestSpeckleCandidates(t *testing.T) {
	dir := os.Getenv("SPECKLE_DIR")
	if dir == "" {
		t.Skip("SPECKLE_DIR not set")
	}
	frames := 25
	temporal := filepath.Join(dir, "train", TemporalFile)
	backbone := filepath.Join(dir, "pretrain", BackboneFile)
	shardsDir := filepath.Join(dir, "pack")
	var p *model.Params
	var meta map[string]string
	var err error
	if _, serr := os.Stat(temporal); serr == nil {
		p, meta, err = LoadVideoModel(temporal, backbone)
	} else {
		// no train stage yet: the backbone alone (temporal layers at identity)
		var f *checkpoint.File
		p, f, err = LoadBackbone(backbone, 1)
		if f != nil {
			meta = f.Metadata
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	res := 32
	fmt.Sscan(meta[MetaResolution], &res)
	sched, _ := diffusion.NewSchedule(NoiseSchedule, NoiseScheduleSteps)
	cond, _, err := stillFrame(SampleOptions{Shards: shardsDir}, res)
	if err != nil {
		t.Fatal(err)
	}
	rhf, rch, n, err := realStats(shardsDir, res)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("real validation frames: %d, hf %.2f, change %.2f", n, rhf, rch)
	fg, err := model.BuildForward(p, true, 1, frames, res, res)
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	bbOnly := p.Clone()
	bbOnly.InitTemporal(1)
	fgBB, err := model.BuildForward(bbOnly, true, 1, frames, res, res)
	if err != nil {
		t.Fatal(err)
	}
	defer fgBB.Close()
	l := diffusion.Layout{B: 1, T: frames, C: 3, H: res, W: res}
	fl := l.FrameLen()

	// one-step x0 estimates on a real validation clip, per timestep
	clip := realClip(t, shardsDir, frames, res)
	clipHF := HighFrequency(clip[fl:], frames-1, 3, res, res)
	rng := rand.New(rand.NewPCG(5, 5))
	noise := make([]float32, len(clip))
	for i := range noise {
		noise[i] = float32(rng.NormFloat64())
	}
	in := make([]float32, l.InputLen())
	xt := make([]float32, len(clip))
	x0 := make([]float32, len(clip))
	t.Logf("one-step x0 estimate of a real clip (clean hf %.2f):", clipHF)
	for _, ts := range []int{999, 800, 500, 300, 200, 100, 50, 20, 5, 0} {
		steps := []int{ts}
		if err := sched.QSample(xt, clip, noise, steps, len(clip)); err != nil {
			t.Fatal(err)
		}
		if err := diffusion.AssembleInput(in, xt, clip[:fl], l, diffusion.FirstFrameKnown); err != nil {
			t.Fatal(err)
		}
		v, err := fg.Predict(in, diffusion.FrameTimesteps(steps, frames))
		if err != nil {
			t.Fatal(err)
		}
		sa, sb := math.Sqrt(sched.AlphaBar[ts]), math.Sqrt(1-sched.AlphaBar[ts])
		var mse float64
		for i := range x0 {
			x0[i] = float32(sa*float64(xt[i]) - sb*float64(v[i]))
			d := float64(x0[i] - clip[i])
			mse += d * d
		}
		t.Logf("  t=%3d  x0 hf %6.2f (ratio %.2f)  x0 rmse %.4f  x_t hf %.2f", ts,
			HighFrequency(x0[fl:], frames-1, 3, res, res), HighFrequency(x0[fl:], frames-1, 3, res, res)/clipHF,
			math.Sqrt(mse/float64(len(x0))), HighFrequency(xt[fl:], frames-1, 3, res, res))
	}

	type cand struct {
		name string
		o    candOptions
	}
	base := candOptions{steps: 20, spacing: "linspace", clip: true, viaEps: true}
	with := func(f func(*candOptions)) candOptions { o := base; f(&o); return o }
	cands := []cand{
		{"current sampler (linspace 999..0, clip x0, v->eps, 20 steps)", base},
		{"no x0 clipping", with(func(o *candOptions) { o.clip = false })},
		{"trailing spacing (999..49, last step to abar=1)", with(func(o *candOptions) { o.spacing = "trailing" })},
		{"leading spacing (950..0: start below 999)", with(func(o *candOptions) { o.spacing = "leading" })},
		{"x0 from v directly (no v->eps float32 round trip)", with(func(o *candOptions) { o.viaEps = false })},
		{"50 steps", with(func(o *candOptions) { o.steps = 50 })},
		{"100 steps", with(func(o *candOptions) { o.steps = 100 })},
		{"eta 1 (DDPM-like)", with(func(o *candOptions) { o.eta = 1 })},
		{"backbone alone (temporal layers at identity)", with(func(o *candOptions) { o.backbone = true })},
		{"eta 1, 10 steps", with(func(o *candOptions) { o.eta, o.steps = 1, 10 })},
		{"eta 1, 50 steps", with(func(o *candOptions) { o.eta, o.steps = 1, 50 })},
		{"eta 1, 100 steps", with(func(o *candOptions) { o.eta, o.steps = 1, 100 })},
		{"10 steps", with(func(o *candOptions) { o.steps = 10 })},
	}
	if os.Getenv("SPECKLE_ONLY") != "" {
		var keep []cand
		for _, c := range cands {
			if strings.Contains(c.name, os.Getenv("SPECKLE_ONLY")) || c.name == cands[0].name {
				keep = append(keep, c)
			}
		}
		cands = keep
	}
	tmp := t.TempDir()
	for _, c := range cands {
		g := fg
		if c.o.backbone {
			g = fgBB
		}
		x := sampleCandidate(t, sched, g.Predict, cond, l, c.o)
		hf := HighFrequency(x[fl:], frames-1, 3, res, res)
		ch := FrameChange(x[fl:], frames-1, fl)
		t.Logf("| %-60s | %6.2f | %5.2f | %6.2f | %5.2f |", c.name, hf, hf/rhf, ch, ch/rch)
		if c.name == cands[0].name {
			ghf := gifHF(t, tmp, x, frames, res)
			t.Logf("| %-60s | %6.2f | %5.2f |", "  same clip through the GIF palette (decoded, 1 px per pixel)", ghf, ghf/rhf)
		}
	}
}

type candOptions struct {
	steps    int
	spacing  string
	clip     bool
	viaEps   bool
	eta      float64
	backbone bool
	// shared is the fraction of the initial noise's variance shared by
	// all frames (0: independent frames, as Sample draws).
	shared float64
}

func candTimesteps(total, n int, spacing string) []int {
	ts := make([]int, n)
	switch spacing {
	case "trailing":
		for i := range n {
			ts[i] = int(math.Round(float64(total)-float64(i)*float64(total)/float64(n))) - 1
		}
	case "leading":
		for i := range n {
			ts[n-1-i] = i * (total / n)
		}
	default:
		return diffusion.Timesteps(total, n)
	}
	return ts
}

// sampleCandidate is DDIM with the candidate's variations, v-prediction.
func sampleCandidate(t *testing.T, s *diffusion.Schedule, predict diffusion.EpsFunc, cond []float32, l diffusion.Layout, o candOptions) []float32 {
	t.Helper()
	if o.viaEps && o.clip && o.eta == 0 && o.spacing == "linspace" && o.shared == 0 {
		// the production path
		x, err := diffusion.SampleDDIM(context.Background(), s, epsFromV(predict, s, 3, l.H*l.W), cond, l, diffusion.DDIMOptions{Steps: o.steps})
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	rng := rand.New(rand.NewPCG(0, 0x6464696d))
	x := make([]float32, l.Len())
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	if o.shared > 0 {
		fl := l.FrameLen()
		common := make([]float32, fl)
		for i := range common {
			common[i] = float32(rng.NormFloat64())
		}
		a, b := float32(math.Sqrt(o.shared)), float32(math.Sqrt(1-o.shared))
		for i := range x {
			x[i] = a*common[i%fl] + b*x[i]
		}
	}
	in := make([]float32, l.InputLen())
	ts := candTimesteps(s.Steps(), o.steps, o.spacing)
	pred := predict
	if o.viaEps {
		pred = epsFromV(predict, s, 3, l.H*l.W)
	}
	for i, tt := range ts {
		if err := diffusion.AssembleInput(in, x, cond, l, diffusion.FirstFrameKnown); err != nil {
			t.Fatal(err)
		}
		out, err := pred(in, diffusion.FrameTimesteps([]int{tt}, l.T))
		if err != nil {
			t.Fatal(err)
		}
		ab := s.AlphaBar[tt]
		abPrev := 1.0
		if i+1 < len(ts) {
			abPrev = s.AlphaBar[ts[i+1]]
		}
		sigma := o.eta * math.Sqrt((1-abPrev)/(1-ab)) * math.Sqrt(1-ab/abPrev)
		c0, ce := math.Sqrt(abPrev), math.Sqrt(math.Max(0, 1-abPrev-sigma*sigma))
		sa, sb := math.Sqrt(ab), math.Sqrt(1-ab)
		for j := range x {
			xj, oj := float64(x[j]), float64(out[j])
			var x0, ej float64
			if o.viaEps {
				x0 = (xj - sb*oj) / sa
				ej = oj
			} else {
				x0 = sa*xj - sb*oj
				ej = sb*xj + sa*oj
			}
			if o.clip {
				x0 = math.Max(-1, math.Min(1, x0))
				ej = (xj - sa*x0) / sb
			}
			v := c0*x0 + ce*ej
			if sigma > 0 {
				v += sigma * rng.NormFloat64()
			}
			x[j] = float32(v)
		}
	}
	fl := l.FrameLen()
	copy(x, cond[:fl])
	return x
}

// realClip is the first frames frames of the first validation video.
func realClip(t *testing.T, shardsDir string, frames, res int) []float32 {
	ds, err := shards.Open(shardsDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	vids := ds.Videos(shards.SplitVal)
	sort.Slice(vids, func(i, j int) bool { return vids[i].ID < vids[j].ID })
	fl := 3 * res * res
	out := make([]float32, frames*fl)
	for f := range frames {
		img, err := ds.Frame(vids[0].ID, min(f+1, vids[0].Frames))
		if err != nil {
			t.Fatal(err)
		}
		shards.ToTensor(out[f*fl:(f+1)*fl], img, res)
	}
	return out
}

// gifHF writes the clip as the sample GIF (scale 8), decodes it, takes one
// pixel per model pixel and returns the high-frequency statistic of
// frames 1...
func gifHF(t *testing.T, dir string, x []float32, frames, res int) float64 {
	imgs, err := media.Frames(x, frames, res, res)
	if err != nil {
		t.Fatal(err)
	}
	const scale = 8
	path := filepath.Join(dir, "c.gif")
	if err := media.WriteGIF(path, imgs, media.Options{Scale: scale}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := gif.DecodeAll(f)
	if err != nil {
		t.Fatal(err)
	}
	fl := 3 * res * res
	out := make([]float32, 0, (frames-1)*fl)
	for _, pi := range g.Image[1:] {
		small := image.NewRGBA(image.Rect(0, 0, res, res))
		for y := range res {
			for xx := range res {
				small.Set(xx, y, pi.At(xx*scale, y*scale))
			}
		}
		out = append(out, media.ToCHW(small)...)
	}
	return HighFrequency(out, frames-1, 3, res, res)
}

// TestSpeckleSheet measures a contact sheet written by Sample (sample.png:
// frames upscaled by an integer factor with nearest neighbour, 2-pixel
// gaps), recovering the frames at the model's resolution exactly: the
// quality of a sample made by a build that did not measure it yet.
//
//	SPECKLE_SHEET=work/default/sample/sample.png SPECKLE_SHARDS=work/default/pack \
//	SPECKLE_FRAMES=25 SPECKLE_RES=32 go test ./trainer -run TestSpeckleSheet -v
func TestSpeckleSheet(t *testing.T) {
	path := os.Getenv("SPECKLE_SHEET")
	if path == "" {
		t.Skip("SPECKLE_SHEET not set")
	}
	var frames, res int
	fmt.Sscan(os.Getenv("SPECKLE_FRAMES"), &frames)
	fmt.Sscan(os.Getenv("SPECKLE_RES"), &res)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	cols := int(math.Ceil(math.Sqrt(float64(frames))))
	const gap = 2
	// sheet width = cols*(res*scale+gap)+gap
	scale := (img.Bounds().Dx() - gap) / cols
	scale = (scale - gap) / res
	fl := 3 * res * res
	x := make([]float32, frames*fl)
	for i := range frames {
		x0, y0 := gap+(i%cols)*(res*scale+gap), gap+(i/cols)*(res*scale+gap)
		small := image.NewRGBA(image.Rect(0, 0, res, res))
		for y := range res {
			for xx := range res {
				small.Set(xx, y, img.At(x0+xx*scale, y0+y*scale))
			}
		}
		copy(x[i*fl:], media.ToCHW(small))
	}
	q, err := MeasureQuality(x, frames, res, os.Getenv("SPECKLE_SHARDS"))
	if err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("SPECKLE_SMALL_SHEET"); out != "" {
		// the first 16 frames at the model's resolution, for bench/
		n := min(16, frames)
		imgs, err := media.Frames(x[:n*fl], n, res, res)
		if err != nil {
			t.Fatal(err)
		}
		if err := media.WriteContactSheet(out, imgs, 0, max(1, 64/res)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s (scale %d): hf %.2f vs real %.2f (%.2fx), change %.2f vs %.2f (%.2fx), %d real frames",
		path, scale, q.GeneratedHF, q.RealHF, q.HFRatio, q.GeneratedChange, q.RealChange, q.ChangeRatio, q.RealFrames)
}
