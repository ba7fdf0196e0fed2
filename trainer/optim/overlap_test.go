package optim

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// overlappedStep takes one overlapped step over buckets (handed over in
// that order, completed in complete's), staging every param, and checks
// what Update and Complete report: the buckets speculated.
func overlappedStep(t *testing.T, o *AdamW, g [][]float32, buckets, complete [][]int) (Stats, []bool) {
	t.Helper()
	stage := make([][]float32, len(g))
	for i := range g {
		stage[i] = make([]float32, len(g[i]))
	}
	ov := o.BeginOverlapped()
	ov.SetWorkers(int(o.step%3) + 1) // 1, 2 or 3 goroutines: the same bits
	spec := make([]bool, len(g))
	var specs []bool
	for _, bucket := range buckets {
		updated, err := ov.Update(bucket, g, stage)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, updated)
		for _, i := range bucket {
			spec[i] = updated
			if updated && !slices.Equal(stage[i], o.params[i].Data) {
				t.Fatalf("speculated param %d: staging differs from the weights", i)
			}
		}
	}
	st, restored, err := ov.Finish()
	if err != nil || restored {
		t.Fatal(err, restored)
	}
	for _, bucket := range complete {
		changed, err := ov.Complete(bucket, g, stage)
		if err != nil {
			t.Fatal(err)
		}
		want := st.Clipped
		for _, i := range bucket {
			want = want || !spec[i]
		}
		if changed != want {
			t.Errorf("step %d: Complete(%v) changed %v, want %v (clipped %v)", st.Step, bucket, changed, want, st.Clipped)
		}
	}
	for i := range g {
		if !slices.Equal(stage[i], o.params[i].Data) {
			t.Fatalf("step %d: staging of param %d differs from its weights", st.Step, i)
		}
	}
	return st, specs
}

// An overlapped step (params handed over bucket by bucket in any order,
// speculated or deferred, then Finish and Complete in another grouping)
// leaves the weights, moments and stats Step leaves, bit for bit:
// unclipped steps, clipped ones (speculated buckets redone from the saved
// values, deferred ones updated once) and a non-finite gradient
// (everything restored, ErrNonFinite). After a clipped step, and once the
// squares summed exceed the clipping norm's, buckets are deferred.
func TestOverlappedEqualsStep(t *testing.T) {
	sizes := []int{3, 70000, 1, 40000, 5000}
	buckets := [][]int{{4}, {1, 3}, {0}, {2}}
	complete := [][]int{{2, 3}, {0, 1, 4}}
	// gradient norms about 100, 100, 50, 100: clipping at 80 clips steps
	// 1, 2 and 4, and step 3 is deferred (after a clipped step) but not
	// clipped
	for _, clip := range []float64{0, 1e9, 1, 80} {
		cfg := DefaultConfig()
		cfg.ClipNorm = clip
		cfg.Schedule = Schedule{Warmup: 2, Total: 10}
		pa, pb := randParams(9, sizes...), randParams(9, sizes...)
		a, err := New(cfg, pa)
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(cfg, pb)
		if err != nil {
			t.Fatal(err)
		}
		clipped, deferredSteps, partly := 0, 0, 0
		for step := 1; step <= 4; step++ {
			g := gradsFor(pa, step)
			if step == 3 {
				for _, gi := range g {
					for j := range gi {
						gi[j] *= 0.5
					}
				}
			}
			wasClipped := a.clippedLast
			sa, err := a.Step(g)
			if err != nil {
				t.Fatal(err)
			}
			sb, specs := overlappedStep(t, b, g, buckets, complete)
			if sa != sb {
				t.Errorf("clip %v step %d: stats %+v, Step's %+v", clip, step, sb, sa)
			}
			if sa.Clipped {
				clipped++
			}
			switch {
			case wasClipped && slices.Contains(specs, true):
				t.Errorf("clip %v step %d: a bucket speculated after a clipped step", clip, step)
			case wasClipped:
				deferredSteps++
			case slices.Contains(specs, false):
				partly++
			}
			for i := range pa {
				if !slices.Equal(pa[i].Data, pb[i].Data) || !slices.Equal(a.m[i], b.m[i]) || !slices.Equal(a.v[i], b.v[i]) {
					t.Fatalf("clip %v step %d: param %s differs from Step's", clip, step, pa[i].Name)
				}
			}
		}
		t.Logf("clip %v: %d clipped steps, %d deferred after a clipped one, %d partly deferred", clip, clipped, deferredSteps, partly)
		want := map[float64][3]int{0: {0, 0, 0}, 1e9: {0, 0, 0}, 1: {4, 3, 1}, 80: {3, 2, 2}}[clip]
		if got := [3]int{clipped, deferredSteps, partly}; got != want {
			t.Errorf("clip %v: %v clipped, deferred and partly deferred steps, want %v", clip, got, want)
		}
		// a NaN gradient changes nothing
		g := gradsFor(pa, 9)
		g[3][17] = float32(math.NaN())
		before := slices.Clone(pb[3].Data)
		ov := b.BeginOverlapped()
		if _, err := ov.Update([]int{0, 1, 2, 3, 4}, g, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ov.Finish(); !errors.Is(err, ErrNonFinite) {
			t.Errorf("NaN gradient: err %v", err)
		}
		if !slices.Equal(before, pb[3].Data) || b.StepCount() != 4 {
			t.Errorf("NaN gradient changed the weights or the step count (%d)", b.StepCount())
		}
	}
}

// Misuse is refused: a param handed over twice, Finish without every
// gradient, Complete before Finish or twice. Abort before Finish restores
// the speculated params (the step not taken); Abort after Finish carries
// the step through (the same weights as Step's).
func TestOverlappedMisuseAndAbort(t *testing.T) {
	ps := randParams(1, 10, 10)
	o, _ := New(DefaultConfig(), ps)
	g := gradsFor(ps, 1)
	start := slices.Clone(ps[0].Data)
	ov := o.BeginOverlapped()
	if _, err := ov.Update([]int{0}, g, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ov.Update([]int{0}, g, nil); err == nil {
		t.Error("a second update of the same param was accepted")
	}
	if _, err := ov.Complete([]int{0}, g, nil); err == nil {
		t.Error("Complete before Finish was accepted")
	}
	if _, _, err := ov.Finish(); err == nil {
		t.Error("Finish without every gradient was accepted")
	}
	ov.Abort(g)
	if !slices.Equal(start, ps[0].Data) || o.StepCount() != 0 {
		t.Errorf("Abort before Finish: weights changed or step count %d", o.StepCount())
	}
	orig := [][]float32{slices.Clone(ps[0].Data), slices.Clone(ps[1].Data)}
	ov = o.BeginOverlapped()
	if _, err := ov.Update([]int{0, 1}, g, nil); err != nil {
		t.Fatal(err)
	}
	ov.Abort(g)
	if !slices.Equal(orig[0], ps[0].Data) || !slices.Equal(orig[1], ps[1].Data) || o.StepCount() != 0 {
		t.Errorf("Abort before Finish: weights changed or step count %d", o.StepCount())
	}
	// after Finish: carried through, like Step
	ref := randParams(1, 10, 10)
	r, _ := New(DefaultConfig(), ref)
	for step := 1; step <= 2; step++ {
		g := gradsFor(ps, step)
		if _, err := r.Step(g); err != nil {
			t.Fatal(err)
		}
		ov = o.BeginOverlapped()
		if _, err := ov.Update([]int{1, 0}, g, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ov.Finish(); err != nil {
			t.Fatal(err)
		}
		if _, err := ov.Complete([]int{1}, g, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ov.Complete([]int{1}, g, nil); err == nil {
			t.Error("a second Complete of the same param was accepted")
		}
		ov.Abort(g)
		for i := range ps {
			if !slices.Equal(ps[i].Data, ref[i].Data) || !slices.Equal(o.m[i], r.m[i]) || !slices.Equal(o.v[i], r.v[i]) {
				t.Fatalf("step %d: Abort after Finish left param %d unlike Step's", step, i)
			}
		}
	}
	if o.StepCount() != 2 {
		t.Errorf("step count %d after two carried-through steps", o.StepCount())
	}
}
