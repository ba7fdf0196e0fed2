package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/internal/testenv"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

func tinyInpaint(t *testing.T) *UNet {
	t.Helper()
	return loadUNet(t, weightsData+"/sd-tiny-inpaint/unet", weights.Options{}, UNetOptions{})
}

// Our inflation of the tiny inpainting UNet, per-frame norms and fresh
// temporal layers, equals the backbone applied to each frame on its own.
func TestInflatedUNetIsBackboneAtInit(t *testing.T) {
	base := tinyInpaint(t)
	video, err := Inflate(base, UNetOptions{GroupNorm: GroupNormPerFrame}, 5)
	if err != nil {
		t.Fatal(err)
	}
	const B, T, H, W = 2, 3, 16, 16
	rng := rand.New(rand.NewPCG(9, 1))
	in := Inputs{
		Input:     randSlice(rng, B*T*9*H*W),
		Timesteps: []float32{10, 10, 10, 700, 700, 700},
		Context:   randSlice(rng, B*T*ContextTokens*16),
	}
	want, err := InterpretInputs(base.Net, base.Params, B*T, 1, H, W, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := InterpretInputs(video.Net, video.Params, B, T, H, W, in)
	if err != nil {
		t.Fatal(err)
	}
	e := relErr(got, want)
	t.Logf("inflated vs backbone frame by frame: rel err %.3g", e)
	if e > 1e-6 {
		t.Errorf("inflated UNet differs from the backbone by %.3g > 1e-6", e)
	}
	// inflating while loading gives the same model, tensor by tensor
	loaded := loadUNet(t, weightsData+"/sd-tiny-inpaint/unet", weights.Options{}, UNetOptions{Pseudo3D: true})
	same, err := Inflate(base, UNetOptions{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded.Params.List) != len(same.Params.List) {
		t.Fatalf("%d parameters loaded inflated, %d inflated after loading", len(loaded.Params.List), len(same.Params.List))
	}
	for _, q := range same.Params.List {
		if d := maxAbsDiff(loaded.Params.Get(q.Name).Data, q.Data); d != 0 {
			t.Errorf("%s differs by %g between inflating on load and after", q.Name, d)
		}
	}
}

// The CPU reference trains the inflated tiny SD UNet a few steps on
// synthetic latents: the loss is finite and falls, every temporal
// parameter gets a gradient of its shape (checked against finite
// differences on a few elements), the backbone stays bit-identical, and
// the exported model loads back in the recipe's layout by name.
func TestTrainTinySDUNet(t *testing.T) {
	testenv.SkipUnderRace(t)
	base := tinyInpaint(t)
	u, err := Inflate(base, UNetOptions{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	const B, T, H, W = 1, 3, 16, 16
	rng := rand.New(rand.NewPCG(4, 4))
	x := randSlice(rng, B*T*9*H*W)
	ts := []float32{400, 400, 400}
	ctx := randSlice(rng, B*T*ContextTokens*16)
	target := randSlice(rng, B*T*4*H*W)
	before := u.Params.Clone()

	tg, err := BuildNetTrain(u.Net, u.Params, B, T, H, W, func(q *Param) bool { return q.Temporal })
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if err := tg.SetContext(ctx); err != nil {
		t.Fatal(err)
	}
	if tg.Skip != 1 || len(tg.Trainable) != len(u.Params.TemporalParams()) {
		t.Fatalf("skip %d, %d trainable of %d temporal", tg.Skip, len(tg.Trainable), len(u.Params.TemporalParams()))
	}
	var losses []float32
	const lr = 0.05
	for step := 0; step < 4; step++ {
		loss, err := tg.Step(x, ts, target)
		if err != nil {
			t.Fatal(err)
		}
		if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
			t.Fatalf("step %d: loss %g", step, loss)
		}
		losses = append(losses, loss)
		if step == 0 {
			checkUNetGrads(t, tg, u, Inputs{Input: x, Timesteps: ts, Context: ctx}, target)
		}
		for i, q := range tg.Trainable {
			g := tg.Grad(i)
			if len(g) != len(q.Data) {
				t.Fatalf("%s: gradient of %d values, want %d", q.Name, len(g), len(q.Data))
			}
			for j, v := range g {
				q.Data[j] -= lr * v
			}
		}
	}
	t.Logf("losses %v", losses)
	if !(losses[len(losses)-1] < losses[0]) {
		t.Errorf("loss did not fall: %v", losses)
	}
	// frozen backbone: bit-identical; temporal layers: moved (a unit norm
	// scale may round back to 1 under the tiny steps of a zero-initialised
	// attention, so most, not all, must change)
	changed, temporal := 0, 0
	for _, q := range u.Params.List {
		d := maxAbsDiff(q.Data, before.Get(q.Name).Data)
		if !q.Temporal && d != 0 {
			t.Errorf("backbone parameter %s changed by %g", q.Name, d)
		}
		if q.Temporal {
			temporal++
			if d != 0 {
				changed++
			}
		}
	}
	t.Logf("%d of %d temporal tensors changed", changed, temporal)
	if changed < temporal*9/10 {
		t.Errorf("only %d of %d temporal tensors changed", changed, temporal)
	}

	// export and load back in the recipe's layout, by name
	for _, dt := range []weights.Dtype{weights.F32, weights.F16} {
		dir := filepath.Join(t.TempDir(), "model")
		if err := u.WriteFolder(dir, dt); err != nil {
			t.Fatal(err)
		}
		sameTensorsAsRecipe(t, dir)
		back, err := LoadUNet(dir, weights.Options{}, UNetOptions{})
		if err != nil {
			t.Fatalf("%s: load back: %v", dt, err)
		}
		if !back.Options.Pseudo3D || back.Options.GroupNorm != GroupNormPerFrame {
			t.Errorf("%s: loaded back as %+v", dt, back.Options)
		}
		var worst float64
		for _, q := range u.Params.List {
			b := back.Params.Get(q.Name)
			for i, v := range q.Data {
				d := math.Abs(float64(b.Data[i]) - float64(v))
				if dt == weights.F16 {
					// half rounding: half an ulp, 2^-11 relative (2^-25 absolute below the normal range)
					d /= math.Max(math.Abs(float64(v))/2048, 1.0/(1<<25))
				}
				worst = math.Max(worst, d)
			}
		}
		limit := 0.0
		if dt == weights.F16 {
			limit = 1 // in units of half an ulp
		}
		if worst > limit {
			t.Errorf("%s: exported values differ by %g (limit %g)", dt, worst, limit)
		}
		if err := u.WriteFolder(dir, dt); err == nil {
			t.Errorf("%s: a second export overwrote %s", dt, dir)
		}
	}
}

// checkUNetGrads compares the graph's gradient of a few elements of some
// temporal parameters with central differences of the interpreter's loss.
func checkUNetGrads(t *testing.T, tg *TrainGraph, u *UNet, in Inputs, target []float32) {
	t.Helper()
	B, T, H, W := tg.B, tg.T, tg.H, tg.W
	loss := func() float64 {
		out, err := InterpretInputs(u.Net, u.Params, B, T, H, W, in)
		if err != nil {
			t.Fatal(err)
		}
		e := len(out) / (B * T)
		var acc float64
		for f := tg.Skip; f < T; f++ {
			for i := f * e; i < (f+1)*e; i++ {
				d := float64(out[i]) - float64(target[i])
				acc += d * d
			}
		}
		return acc / float64((T-tg.Skip)*e)
	}
	checked := 0
	for i, q := range tg.Trainable {
		// a spread of layers: temporal convs, norms, attention projections
		if i%25 != 0 && !strings.Contains(q.Name, "down_blocks.1.attentions.0") {
			continue
		}
		g := tg.Grad(i)
		j := 0 // the element with the largest gradient: the least noisy difference
		for k, v := range g {
			if math.Abs(float64(v)) > math.Abs(float64(g[j])) {
				j = k
			}
		}
		orig := q.Data[j]
		const h = 1e-2
		q.Data[j] = orig + h
		lp := loss()
		q.Data[j] = orig - h
		lm := loss()
		q.Data[j] = orig
		num := (lp - lm) / (float64(orig+h) - float64(orig-h))
		t.Logf("%s[%d]: gradient %.6g, finite difference %.6g", q.Name, j, g[j], num)
		if math.Abs(num-float64(g[j])) > 2e-2*math.Max(math.Abs(num), 1e-4) { // curvature and float32 noise: ~1%
			t.Errorf("%s[%d]: gradient %g, finite difference %g", q.Name, j, g[j], num)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no gradient checked")
	}
}

// Gradients through every temporal layer kind with live weights: the
// recipe's pseudo-3D fixture (random temporal weights, joint group norms).
func TestPseudo3DGradients(t *testing.T) {
	testenv.SkipUnderRace(t)
	u := loadUNet(t, weightsData+"/sd-tiny-pseudo3d/unet", weights.Options{}, UNetOptions{})
	const B, T, H, W = 1, 3, 8, 8
	rng := rand.New(rand.NewPCG(6, 6))
	in := Inputs{Input: randSlice(rng, B*T*9*H*W), Timesteps: []float32{50, 50, 50}, Context: randSlice(rng, B*T*ContextTokens*16)}
	target := randSlice(rng, B*T*4*H*W)
	tg, err := BuildNetTrain(u.Net, u.Params, B, T, H, W, func(q *Param) bool { return q.Temporal })
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if err := tg.SetContext(in.Context); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Step(in.Input, in.Timesteps, target); err != nil {
		t.Fatal(err)
	}
	checkUNetGrads(t, tg, u, in, target)
}

// sameTensorsAsRecipe checks that an exported folder holds exactly the
// recipe fixture's tensor names and shapes.
func sameTensorsAsRecipe(t *testing.T, dir string) {
	t.Helper()
	names := func(path string) map[string][]int {
		m, err := weights.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if !m.Pseudo3D {
			t.Errorf("%s: not recognised as the pseudo-3D layout", path)
		}
		out := map[string][]int{}
		src := m.Components[weights.UNet]
		for _, n := range src.Names() {
			ti, _ := src.Info(n)
			out[n] = ti.Shape
		}
		return out
	}
	ours, recipe := names(dir), names(weightsData+"/sd-tiny-pseudo3d/unet")
	for n, s := range recipe {
		if o, ok := ours[n]; !ok || fmt.Sprint(o) != fmt.Sprint(s) {
			t.Errorf("exported folder: %s is %v, the recipe's %v", n, o, s)
		}
	}
	for n := range ours {
		if _, ok := recipe[n]; !ok {
			t.Errorf("exported folder has %s, the recipe's layout does not", n)
		}
	}
}
