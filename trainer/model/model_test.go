package model

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/timelapse-ml/pipeline/internal/testenv"
	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// small is a model small enough for unit tests that still has every block
// kind: two levels, attention on the lower one and in the middle.
func small() Config {
	return Config{
		InChannels: 7, OutChannels: 3, BaseChannels: 8, ChannelMults: []int{1, 2},
		BlocksPerLevel: 1, AttentionLevels: []int{1}, MidAttention: true,
		Groups: 4, Heads: 2, TimeEmbedDim: 16,
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func TestPresetsValidate(t *testing.T) {
	for _, name := range []string{"tiny", "timelapse"} {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := small()
	bad.BaseChannels = 6 // not a multiple of 4 groups
	bad.AttentionLevels = []int{5}
	if err := bad.Validate(); err == nil {
		t.Error("invalid config validated")
	}
	if small().Hash() != small().Hash() || small().Hash() == Tiny().Hash() {
		t.Error("config hash not stable or not distinct")
	}
}

func TestTimelapseSize(t *testing.T) {
	net, err := Describe(Timelapse(), true)
	if err != nil {
		t.Fatal(err)
	}
	total, temporal := net.ParamCount()
	t.Logf("timelapse: %d params, %d temporal", total, temporal)
	if total < 17e6 || total > 19e6 || temporal < 3.3e6 || temporal > 3.9e6 {
		t.Errorf("timelapse model has %d params (%d temporal), want about 18M (3.6M)", total, temporal)
	}
}

func TestParamNames(t *testing.T) {
	p, err := NewParams(small(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"conv_in.weight", "time_embed.0.weight", "down.1.res.0.conv1.weight",
		"down.1.res.0.temporal_conv1.weight", "down.1.attn.0.qkv.weight",
		"down.1.attn.0.temporal_attn.proj.weight", "mid.attn.0.temporal_attn.qkv.weight",
		"up.0.res.1.conv2.bias", "up.1.upsample.conv.weight", "out.conv.weight",
	} {
		if p.Get(name) == nil {
			t.Errorf("parameter %s missing", name)
		}
	}
	for _, q := range p.List {
		if q.Temporal != IsTemporal(q.Name) {
			t.Errorf("%s: Temporal flag %v disagrees with its name", q.Name, q.Temporal)
		}
	}
	// seeded: same seed, same values; the backbone does not depend on the
	// temporal layers
	p2, _ := NewParams(small(), 1)
	for i, q := range p.List {
		if maxAbsDiff(q.Data, p2.List[i].Data) != 0 {
			t.Fatalf("%s differs between two inits with the same seed", q.Name)
		}
	}
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// The video model at initialisation equals the backbone applied to each
// frame on its own.
func TestVideoModelIsBackboneAtInit(t *testing.T) {
	cfg := small()
	p, err := NewParams(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	const B, T, H, W = 2, 3, 8, 8
	rng := rand.New(rand.NewPCG(1, 2))
	in := randSlice(rng, B*T*cfg.InChannels*H*W)
	ts := diffusion.FrameTimesteps([]int{17, 640}, T)

	video, err := BuildForward(p, true, B, T, H, W)
	if err != nil {
		t.Fatal(err)
	}
	defer video.Close()
	vo, err := video.Predict(in, ts)
	if err != nil {
		t.Fatal(err)
	}
	vo = append([]float32(nil), vo...)

	// the backbone sees B*T independent frames
	bb, err := BuildForward(p, false, B*T, 1, H, W)
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	bo, err := bb.Predict(in, ts)
	if err != nil {
		t.Fatal(err)
	}
	var mag float64
	for _, v := range bo {
		mag = math.Max(mag, math.Abs(float64(v)))
	}
	if mag == 0 {
		t.Fatal("backbone output is all zero; the test would prove nothing")
	}
	if d := maxAbsDiff(vo, bo); d >= 1e-5 {
		t.Errorf("video model differs from the per-frame backbone by %g at init", d)
	}
	// and once the temporal layers move, frames interact
	for _, q := range p.TemporalParams() {
		for i := range q.Data {
			q.Data[i] += 0.05 * float32(rng.NormFloat64())
		}
	}
	vo2, err := video.Predict(in, ts)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(vo2, bo); d < 1e-3 {
		t.Errorf("perturbed temporal layers changed the output by only %g", d)
	}
}

// adam is a plain Adam step for the tests (the trainer owns AdamW).
type adam struct {
	m, v [][]float32
	step int
}

func (a *adam) update(params []*Param, grads func(i int) []float32, lr float64) {
	if a.m == nil {
		for _, q := range params {
			a.m = append(a.m, make([]float32, len(q.Data)))
			a.v = append(a.v, make([]float32, len(q.Data)))
		}
	}
	a.step++
	b1, b2 := 0.9, 0.999
	c1, c2 := 1-math.Pow(b1, float64(a.step)), 1-math.Pow(b2, float64(a.step))
	for i, q := range params {
		g := grads(i)
		m, v := a.m[i], a.v[i]
		for j := range q.Data {
			m[j] = float32(b1)*m[j] + float32(1-b1)*g[j]
			v[j] = float32(b2)*v[j] + float32(1-b2)*g[j]*g[j]
			q.Data[j] -= float32(lr * (float64(m[j]) / c1) / (math.Sqrt(float64(v[j])/c2) + 1e-8))
		}
	}
}

func batch(t *testing.T, cfg Config, B, T, H, W int, seed uint64) (in, ts, target []float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	l := diffusion.Layout{B: B, T: T, C: cfg.OutChannels, H: H, W: W}
	// a timelapse-like clip: a random first frame that brightens slowly
	x0 := make([]float32, l.Len())
	fl := l.FrameLen()
	for b := 0; b < B; b++ {
		first := randSlice(rng, fl)
		for f := 0; f < T; f++ {
			for i, v := range first {
				x0[(b*T+f)*fl+i] = float32(math.Tanh(float64(v) + 0.1*float64(f)))
			}
		}
	}
	noise := randSlice(rng, l.Len())
	sched, err := diffusion.NewSchedule("cosine", diffusion.DefaultSteps)
	if err != nil {
		t.Fatal(err)
	}
	steps := make([]int, B)
	for i := range steps {
		steps[i] = 100 + 200*i
	}
	noisy := make([]float32, l.Len())
	if err := sched.QSample(noisy, x0, noise, steps, T*l.FrameLen()); err != nil {
		t.Fatal(err)
	}
	in = make([]float32, l.InputLen())
	if err := diffusion.AssembleInput(in, noisy, diffusion.FirstFrames(x0, l), l, diffusion.FirstFrameKnown); err != nil {
		t.Fatal(err)
	}
	return in, diffusion.FrameTimesteps(steps, T), noise
}

// Freezing: video training takes gradients of temporal parameters only; no
// graph node computes a backbone weight's gradient and an optimizer step
// leaves every backbone weight bit-identical.
func TestFreezing(t *testing.T) {
	cfg := small()
	p, err := NewParams(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	before := p.Clone()
	const B, T, H, W = 1, 3, 8, 8
	tg, err := BuildTrain(p, true, B, T, H, W)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	_, temporalCount := p.Count()
	n := 0
	for _, q := range tg.Trainable {
		if !q.Temporal {
			t.Errorf("backbone parameter %s is trainable", q.Name)
		}
		n += len(q.Data)
	}
	if n != temporalCount {
		t.Errorf("trainable set has %d values, want all %d temporal", n, temporalCount)
	}
	weightGrads := 0
	for _, node := range tg.Graph.G.AllNodes() {
		if w := nn.WeightGradOf(node); w != nil {
			weightGrads++
			if !IsTemporal(w.Name()) {
				t.Errorf("node %v computes the gradient of backbone weight %s", node, w.Name())
			}
		}
	}
	if weightGrads != len(tg.Trainable) {
		t.Errorf("%d weight-gradient nodes for %d trainable parameters", weightGrads, len(tg.Trainable))
	}
	for name, node := range tg.ParamNodes {
		if !IsTemporal(name) && node.Deriv() != nil {
			t.Errorf("backbone parameter %s has a gradient node", name)
		}
	}

	in, ts, target := batch(t, cfg, B, T, H, W, 1)
	var opt adam
	for step := 0; step < 2; step++ {
		if _, err := tg.Step(in, ts, target); err != nil {
			t.Fatal(err)
		}
		opt.update(tg.Trainable, tg.Grad, 1e-2)
	}
	changed := 0
	for i, q := range p.List {
		d := maxAbsDiff(q.Data, before.List[i].Data)
		if !q.Temporal && d != 0 {
			t.Errorf("backbone weight %s changed by %g", q.Name, d)
		}
		if q.Temporal && d != 0 {
			changed++
		}
	}
	if changed == 0 {
		t.Error("no temporal parameter changed: the test proves nothing")
	}
}

// Pretraining: the backbone graph trains every backbone weight and has no
// temporal parameter.
func TestBackboneTrainGraph(t *testing.T) {
	p, err := NewParams(small(), 3)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := BuildTrain(p, false, 2, 1, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	total, temporal := p.Count()
	n := 0
	for _, q := range tg.Trainable {
		n += len(q.Data)
	}
	if n != total-temporal {
		t.Errorf("backbone graph trains %d values, want %d", n, total-temporal)
	}
	for name := range tg.ParamNodes {
		if IsTemporal(name) {
			t.Errorf("backbone graph uses temporal parameter %s", name)
		}
	}
}

func overfit(t *testing.T, cfg Config, video bool, T int, lr float64) {
	p, err := NewParams(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	const B, H, W = 1, 8, 8
	tg, err := BuildTrain(p, video, B, T, H, W)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	in, ts, target := batch(t, cfg, B, T, H, W, 9)
	var opt adam
	var first, last float32
	for step := 0; step < 100; step++ {
		l, err := tg.Step(in, ts, target)
		if err != nil {
			t.Fatal(err)
		}
		if math.IsNaN(float64(l)) {
			t.Fatalf("step %d: loss is NaN", step)
		}
		if step == 0 {
			first = l
		}
		last = l
		opt.update(tg.Trainable, tg.Grad, lr)
	}
	t.Logf("video=%v: loss %.4f -> %.4f (%.1f%%)", video, first, last, 100*last/first)
	if last >= 0.3*first {
		t.Errorf("video=%v: 100 steps on one clip took the loss from %.4f to %.4f, want below 30%%", video, first, last)
	}
}

func TestOverfitVideo(t *testing.T) {
	testenv.SkipUnderRace(t)
	cfg := small()
	cfg.BaseChannels = 16
	overfit(t, cfg, true, 4, 1e-2)
}
func TestOverfitBackbone(t *testing.T) { overfit(t, small(), false, 2, 3e-3) }

func TestSampleAnyLength(t *testing.T) {
	cfg := small()
	p, err := NewParams(cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := diffusion.NewSchedule("linear", diffusion.DefaultSteps)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for _, frames := range []int{8, 40} {
		l := diffusion.Layout{B: 1, T: frames, C: 3, H: 8, W: 8}
		cond := make([]float32, l.FrameLen())
		for i := range cond {
			cond[i] = float32(math.Tanh(rng.NormFloat64()))
		}
		clip, err := SampleClips(context.Background(), p, sched, cond, l, diffusion.DDIMOptions{Steps: 4, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(clip) != frames*l.FrameLen() {
			t.Fatalf("%d frames: got %d values, want %d", frames, len(clip), frames*l.FrameLen())
		}
		for i, v := range clip {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < -1 || v > 1 {
				t.Fatalf("%d frames: value %d is %g", frames, i, v)
			}
		}
		if maxAbsDiff(clip[:l.FrameLen()], cond) != 0 {
			t.Errorf("%d frames: frame 0 is not the conditioning image", frames)
		}
		if maxAbsDiff(clip[(frames-1)*l.FrameLen():], cond) == 0 {
			t.Errorf("%d frames: last frame equals the conditioning image", frames)
		}
	}
}

// The whole model's gradients of temporal parameters against finite
// differences of the loss (float64 from the float32 forward).
func TestModelGradients(t *testing.T) {
	cfg := small()
	p, err := NewParams(cfg, 13)
	if err != nil {
		t.Fatal(err)
	}
	// move the temporal layers off their identity/zero start so every
	// path carries gradient
	rng := rand.New(rand.NewPCG(8, 8))
	for _, q := range p.TemporalParams() {
		for i := range q.Data {
			q.Data[i] += 0.1 * float32(rng.NormFloat64())
		}
	}
	const B, T, H, W = 1, 3, 8, 8
	tg, err := BuildTrain(p, true, B, T, H, W)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	in, ts, target := batch(t, cfg, B, T, H, W, 2)
	if _, err := tg.Step(in, ts, target); err != nil {
		t.Fatal(err)
	}
	// finite differences need only the forward pass
	fg, err := BuildForward(p, true, B, T, H, W)
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	loss := func() float64 {
		out, err := fg.Predict(in, ts)
		if err != nil {
			t.Fatal(err)
		}
		fl := cfg.OutChannels * H * W
		var acc float64
		for i := fl; i < T*fl; i++ { // frames 1.. of the one clip
			d := float64(out[i]) - float64(target[i])
			acc += d * d
		}
		return acc / float64((T-1)*fl)
	}
	loss()
	grads := make([][]float32, len(tg.Trainable))
	for i := range grads {
		grads[i] = append([]float32(nil), tg.Grad(i)...)
	}
	const h = 1e-2
	var num2, ana2, diff2 float64
	for i, q := range tg.Trainable {
		for k := 0; k < 2; k++ {
			j := rng.IntN(len(q.Data))
			orig := q.Data[j]
			q.Data[j] = orig + h
			lp := loss()
			q.Data[j] = orig - h
			lm := loss()
			q.Data[j] = orig
			n := (lp - lm) / (float64(orig+h) - float64(orig-h))
			a := float64(grads[i][j])
			num2 += n * n
			ana2 += a * a
			diff2 += (n - a) * (n - a)
		}
	}
	rel := math.Sqrt(diff2) / math.Max(math.Sqrt(num2), math.Sqrt(ana2))
	t.Logf("model gradient relative error %.3g over %d parameters", rel, len(tg.Trainable))
	if rel > 1e-3 {
		t.Errorf("model gradient relative error %.3g > 1e-3", rel)
	}
}

// Walking the description with the plain nn functions gives exactly the
// Gorgonia graph's output: the description is complete for executors.
func TestInterpretMatchesGraph(t *testing.T) {
	cfg := small()
	p, err := NewParams(cfg, 21)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(21, 1))
	for _, q := range p.TemporalParams() {
		for i := range q.Data {
			q.Data[i] += 0.1 * float32(rng.NormFloat64())
		}
	}
	const B, T, H, W = 2, 3, 8, 8
	in := randSlice(rng, B*T*cfg.InChannels*H*W)
	ts := diffusion.FrameTimesteps([]int{5, 900}, T)
	for _, video := range []bool{false, true} {
		net, err := Describe(cfg, video)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Interpret(net, p, B, T, H, W, in, ts)
		if err != nil {
			t.Fatal(err)
		}
		fg, err := BuildForward(p, video, B, T, H, W)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fg.Predict(in, ts)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(got, want); d != 0 {
			t.Errorf("video=%v: graph and interpreter differ by %g", video, d)
		}
		fg.Close()
	}
}

// Gradients are bit-identical whatever the number of cores, so a resumed
// or repeated run reproduces exactly.
func TestGradientsIndependentOfCores(t *testing.T) {
	cfg := small()
	for _, video := range []bool{true, false} {
		var ref [][]float32
		for _, procs := range []int{1, 3} {
			prev := runtime.GOMAXPROCS(procs)
			p, err := NewParams(cfg, 4)
			if err != nil {
				t.Fatal(err)
			}
			T := 4
			if !video {
				T = 1
			}
			tg, err := BuildTrain(p, video, 2, T, 8, 8)
			if err != nil {
				t.Fatal(err)
			}
			in, ts, target := batch(t, cfg, 2, T, 8, 8, 6)
			if _, err := tg.Step(in, ts, target); err != nil {
				t.Fatal(err)
			}
			var gs [][]float32
			for i := range tg.Trainable {
				gs = append(gs, append([]float32(nil), tg.Grad(i)...))
			}
			tg.Close()
			runtime.GOMAXPROCS(prev)
			if ref == nil {
				ref = gs
				continue
			}
			for i := range gs {
				for j := range gs[i] {
					if math.Float32bits(gs[i][j]) != math.Float32bits(ref[i][j]) {
						t.Fatalf("video=%v: gradient of %s[%d] differs between 1 and %d cores: %g vs %g",
							video, tg.Trainable[i].Name, j, procs, gs[i][j], ref[i][j])
					}
				}
			}
		}
	}
}
