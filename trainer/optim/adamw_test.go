package optim

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func randParams(seed uint64, sizes ...int) []*Param {
	r := rand.New(rand.NewPCG(seed, 1))
	var ps []*Param
	for i, n := range sizes {
		p := &Param{Name: string(rune('a' + i)), Shape: []int{n}, Data: make([]float32, n)}
		for j := range p.Data {
			p.Data[j] = float32(r.NormFloat64())
		}
		ps = append(ps, p)
	}
	return ps
}

func gradsFor(ps []*Param, step int) [][]float32 {
	r := rand.New(rand.NewPCG(uint64(step), 2))
	gs := make([][]float32, len(ps))
	for i, p := range ps {
		gs[i] = make([]float32, len(p.Data))
		for j := range gs[i] {
			gs[i][j] = float32(r.NormFloat64()) * 0.3
		}
	}
	return gs
}

// reference is a plain float64 AdamW (PyTorch's formulation).
func reference(cfg Config, w, g [][]float64, steps int, gradAt func(int) [][]float64) {
	m := make([][]float64, len(w))
	v := make([][]float64, len(w))
	for i := range w {
		m[i] = make([]float64, len(w[i]))
		v[i] = make([]float64, len(w[i]))
	}
	for t := 1; t <= steps; t++ {
		g = gradAt(t)
		var sq float64
		for i := range g {
			for _, x := range g[i] {
				sq += x * x
			}
		}
		norm, scale := math.Sqrt(sq), 1.0
		if cfg.ClipNorm > 0 && norm > cfg.ClipNorm {
			scale = cfg.ClipNorm / (norm + 1e-6)
		}
		lr := cfg.LR * cfg.Schedule.Factor(t)
		for i := range w {
			for j := range w[i] {
				gj := g[i][j] * scale
				w[i][j] *= 1 - lr*cfg.WeightDecay
				m[i][j] = cfg.Beta1*m[i][j] + (1-cfg.Beta1)*gj
				v[i][j] = cfg.Beta2*v[i][j] + (1-cfg.Beta2)*gj*gj
				mh := m[i][j] / (1 - math.Pow(cfg.Beta1, float64(t)))
				vh := v[i][j] / (1 - math.Pow(cfg.Beta2, float64(t)))
				w[i][j] -= lr * mh / (math.Sqrt(vh) + cfg.Eps)
			}
		}
	}
}

func TestMatchesReference(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LR, cfg.WeightDecay, cfg.ClipNorm = 0.01, 0.1, 3
	cfg.Schedule = Schedule{Warmup: 3, Cosine: true, Total: 10, MinFactor: 0.1}
	ps := randParams(1, 100, 7)
	w := make([][]float64, len(ps))
	for i, p := range ps {
		for _, x := range p.Data {
			w[i] = append(w[i], float64(x))
		}
	}
	o, err := New(cfg, ps)
	if err != nil {
		t.Fatal(err)
	}
	clipped := false
	for s := 1; s <= 10; s++ {
		st, err := o.Step(gradsFor(ps, s))
		if err != nil {
			t.Fatal(err)
		}
		clipped = clipped || st.Clipped
	}
	if !clipped {
		t.Error("ClipNorm 3 never clipped gradients of norm ~3.1; test does not exercise clipping")
	}
	reference(cfg, w, nil, 10, func(s int) [][]float64 {
		g32 := gradsFor(ps, s)
		g := make([][]float64, len(g32))
		for i := range g32 {
			for _, x := range g32[i] {
				g[i] = append(g[i], float64(x))
			}
		}
		return g
	})
	for i, p := range ps {
		for j, x := range p.Data {
			if d := math.Abs(float64(x) - w[i][j]); d > 1e-5 {
				t.Fatalf("param %s[%d] = %v, reference %v", p.Name, j, x, w[i][j])
			}
		}
	}
}

func TestClipping(t *testing.T) {
	ps := randParams(2, 4)
	cfg := DefaultConfig()
	cfg.ClipNorm = 1
	o, _ := New(cfg, ps)
	g := [][]float32{{3, 0, 4, 0}}
	st, err := o.Step(g)
	if err != nil {
		t.Fatal(err)
	}
	if st.GradNorm != 5 || !st.Clipped {
		t.Errorf("stats %+v, want norm 5 and clipped", st)
	}
	// After clipping the first moment is (1-beta1)*g/5.
	if m := o.m[0][0]; math.Abs(float64(m)-0.1*3/5) > 1e-6 {
		t.Errorf("m[0] = %v, want %v", m, 0.1*3/5)
	}
}

func TestDeterministicAcrossCores(t *testing.T) {
	run := func(procs int) []float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		ps := randParams(3, 3*chunk+17, 5)
		o, _ := New(DefaultConfig(), ps)
		for s := 1; s <= 3; s++ {
			if _, err := o.Step(gradsFor(ps, s)); err != nil {
				t.Fatal(err)
			}
		}
		return ps[0].Data
	}
	a, b := run(1), run(4)
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("weight %d differs between 1 and 4 cores: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestNonFiniteLeavesStateUnchanged(t *testing.T) {
	ps := randParams(4, 3)
	before := append([]float32(nil), ps[0].Data...)
	o, _ := New(DefaultConfig(), ps)
	_, err := o.Step([][]float32{{1, float32(math.NaN()), 0}})
	if !errors.Is(err, ErrNonFinite) {
		t.Fatalf("err = %v, want ErrNonFinite", err)
	}
	if o.StepCount() != 0 || o.m[0][0] != 0 {
		t.Error("a rejected step changed the optimizer state")
	}
	for i := range before {
		if ps[0].Data[i] != before[i] {
			t.Fatal("a rejected step changed the weights")
		}
	}
}

func TestStateResumesExactly(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Schedule = Schedule{Warmup: 2}
	straight := randParams(5, 50)
	o, _ := New(cfg, straight)
	for s := 1; s <= 6; s++ {
		o.Step(gradsFor(straight, s))
	}

	resumed := randParams(5, 50)
	o1, _ := New(cfg, resumed)
	for s := 1; s <= 3; s++ {
		o1.Step(gradsFor(resumed, s))
	}
	state := o1.State()
	o2, _ := New(cfg, resumed)
	if err := o2.LoadState(state); err != nil {
		t.Fatal(err)
	}
	for s := 4; s <= 6; s++ {
		o2.Step(gradsFor(resumed, s))
	}
	for i := range straight[0].Data {
		if math.Float32bits(straight[0].Data[i]) != math.Float32bits(resumed[0].Data[i]) {
			t.Fatalf("weight %d: straight %v, resumed %v", i, straight[0].Data[i], resumed[0].Data[i])
		}
	}
	bad := o1.State()
	delete(bad.Tensors, "v/a")
	if err := o2.LoadState(bad); err == nil {
		t.Error("LoadState accepted a state without v/a")
	}
}

func TestConvergesOnQuadratic(t *testing.T) {
	p := &Param{Name: "x", Shape: []int{2}, Data: []float32{3, -2}}
	cfg := DefaultConfig()
	cfg.LR, cfg.WeightDecay = 0.05, 0
	o, _ := New(cfg, []*Param{p})
	for range 500 {
		// loss = (x0-1)^2 + (x1+1)^2
		o.Step([][]float32{{2 * (p.Data[0] - 1), 2 * (p.Data[1] + 1)}})
	}
	if math.Abs(float64(p.Data[0]-1)) > 0.02 || math.Abs(float64(p.Data[1]+1)) > 0.02 {
		t.Errorf("x = %v, want about (1, -1)", p.Data)
	}
}

func TestSchedule(t *testing.T) {
	s := Schedule{Warmup: 4, Cosine: true, Total: 14, MinFactor: 0.1}
	cases := map[int]float64{1: 0.25, 4: 1, 9: 0.55, 14: 0.1, 20: 0.1}
	for step, want := range cases {
		if got := s.Factor(step); math.Abs(got-want) > 1e-12 {
			t.Errorf("Factor(%d) = %v, want %v", step, got, want)
		}
	}
	if got := (Schedule{Warmup: 2}).Factor(100); got != 1 {
		t.Errorf("constant schedule after warm-up = %v, want 1", got)
	}
}
