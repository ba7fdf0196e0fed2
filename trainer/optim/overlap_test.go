package optim

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// An overlapped step (params updated bucket by bucket in any order, then
// Finish) leaves the weights, moments and stats Step leaves, bit for bit:
// unclipped steps, clipped ones (redone from the saved values) and a
// non-finite gradient (everything restored, ErrNonFinite).
func TestOverlappedEqualsStep(t *testing.T) {
	sizes := []int{3, 70000, 1, 40000, 5000}
	for _, clip := range []float64{0, 1e9, 1} {
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
		clipped := 0
		for step := 1; step <= 4; step++ {
			g := gradsFor(pa, step)
			sa, err := a.Step(g)
			if err != nil {
				t.Fatal(err)
			}
			ov := b.BeginOverlapped()
			for _, bucket := range [][]int{{4}, {1, 3}, {0}, {2}} {
				if err := ov.Update(bucket, g); err != nil {
					t.Fatal(err)
				}
			}
			sb, redone, restored, err := ov.Finish()
			if err != nil || restored {
				t.Fatal(err, restored)
			}
			if redone {
				for _, bucket := range [][]int{{2, 3}, {0, 1, 4}} {
					if err := ov.Redo(bucket, g); err != nil {
						t.Fatal(err)
					}
				}
			}
			if sa != sb || redone != sa.Clipped {
				t.Errorf("clip %v step %d: stats %+v (redone %v), Step's %+v", clip, step, sb, redone, sa)
			}
			if sa.Clipped {
				clipped++
			}
			for i := range pa {
				if !slices.Equal(pa[i].Data, pb[i].Data) || !slices.Equal(a.m[i], b.m[i]) || !slices.Equal(a.v[i], b.v[i]) {
					t.Fatalf("clip %v step %d: param %s differs from Step's", clip, step, pa[i].Name)
				}
			}
		}
		if (clip == 1) != (clipped > 0) {
			t.Errorf("clip %v: %d clipped steps", clip, clipped)
		}
		// a NaN gradient changes nothing
		g := gradsFor(pa, 9)
		g[3][17] = float32(math.NaN())
		before := slices.Clone(pb[3].Data)
		ov := b.BeginOverlapped()
		if err := ov.Update([]int{0, 1, 2, 3, 4}, g); err != nil {
			t.Fatal(err)
		}
		if _, _, restored, err := ov.Finish(); !errors.Is(err, ErrNonFinite) || !restored {
			t.Errorf("NaN gradient: restored %v, err %v", restored, err)
		}
		if !slices.Equal(before, pb[3].Data) || b.StepCount() != 4 {
			t.Errorf("NaN gradient changed the weights or the step count (%d)", b.StepCount())
		}
	}
	// every param must be updated before Finish, and only once
	ps := randParams(1, 10, 10)
	o, _ := New(DefaultConfig(), ps)
	g := gradsFor(ps, 1)
	ov := o.BeginOverlapped()
	if err := ov.Update([]int{0}, g); err != nil {
		t.Fatal(err)
	}
	if err := ov.Update([]int{0}, g); err == nil {
		t.Error("a second update of the same param was accepted")
	}
	if _, _, _, err := ov.Finish(); err == nil {
		t.Error("Finish without every gradient was accepted")
	}
	// a failed step after a clipped Finish leaves everything as before
	before := slices.Clone(ps[1].Data)
	ov = o.BeginOverlapped()
	if err := ov.Update([]int{0, 1}, g); err != nil {
		t.Fatal(err)
	}
	if _, redo, _, err := ov.Finish(); err != nil || !redo {
		t.Fatalf("clipped Finish: redo %v, err %v", redo, err)
	}
	if err := ov.Redo([]int{0}, g); err != nil {
		t.Fatal(err)
	}
	ov.Abort()
	if !slices.Equal(before, ps[1].Data) || o.StepCount() != 0 {
		t.Errorf("Abort after a clipped Finish: weights changed or step count %d", o.StepCount())
	}
}
