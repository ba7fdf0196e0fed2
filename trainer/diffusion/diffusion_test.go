package diffusion

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

func TestSchedules(t *testing.T) {
	lin, err := NewSchedule("linear", DefaultSteps)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(lin.Betas[0]-1e-4) > 1e-12 || math.Abs(lin.Betas[999]-0.02) > 1e-12 {
		t.Errorf("linear betas run %g..%g, want 1e-4..0.02", lin.Betas[0], lin.Betas[999])
	}
	cos, err := NewSchedule("cosine", DefaultSteps)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Schedule{lin, cos} {
		if s.Steps() != DefaultSteps {
			t.Errorf("%s: %d steps", s.Kind, s.Steps())
		}
		for i := 1; i < s.Steps(); i++ {
			if !(s.AlphaBar[i] < s.AlphaBar[i-1]) || s.Betas[i] <= 0 || s.Betas[i] >= 1 {
				t.Fatalf("%s: step %d: beta %g, alphabar %g after %g", s.Kind, i, s.Betas[i], s.AlphaBar[i], s.AlphaBar[i-1])
			}
		}
		if s.AlphaBar[0] < 0.99 || s.AlphaBar[s.Steps()-1] > 1e-3 {
			t.Errorf("%s: alphabar runs %g..%g, want ~1..~0", s.Kind, s.AlphaBar[0], s.AlphaBar[s.Steps()-1])
		}
	}
	// cosine: alphabar(t) = f(t)/f(0) with f = cos^2(((t/T)+s)/(1+s) * pi/2)
	f := func(x float64) float64 { c := math.Cos((x/1000 + 0.008) / 1.008 * math.Pi / 2); return c * c }
	if got, want := cos.AlphaBar[499], f(500)/f(0); math.Abs(got-want) > 1e-9 {
		t.Errorf("cosine alphabar[499] = %g, want %g", got, want)
	}
	if _, err := NewSchedule("quadratic", 10); err == nil {
		t.Error("unknown schedule accepted")
	}
}

func TestQSample(t *testing.T) {
	s, _ := NewSchedule("linear", DefaultSteps)
	x0 := []float32{1, -1, 0.5, 0.25}
	noise := []float32{0.5, 0.5, -1, 2}
	dst := make([]float32, 4)
	if err := s.QSample(dst, x0, noise, []int{0, 999}, 2); err != nil {
		t.Fatal(err)
	}
	for i := range dst {
		ti := []int{0, 999}[i/2]
		want := math.Sqrt(s.AlphaBar[ti])*float64(x0[i]) + math.Sqrt(1-s.AlphaBar[ti])*float64(noise[i])
		if math.Abs(float64(dst[i])-want) > 1e-6 {
			t.Errorf("x_t[%d] = %g, want %g", i, dst[i], want)
		}
	}
	if err := s.QSample(dst, x0, noise, []int{0, 1000}, 2); err == nil {
		t.Error("timestep 1000 accepted")
	}
}

func TestAssembleInput(t *testing.T) {
	l := Layout{B: 2, T: 3, C: 2, H: 1, W: 2}
	noisy := make([]float32, l.Len())
	for i := range noisy {
		noisy[i] = float32(i)
	}
	cond := []float32{-1, -2, -3, -4, -5, -6, -7, -8}
	dst := make([]float32, l.InputLen())
	if err := AssembleInput(dst, noisy, cond, l, FirstFrameKnown); err != nil {
		t.Fatal(err)
	}
	// clip 1, frame 2: noisy values 20..23, cond of clip 1, mask 0
	f := 1*3 + 2
	got := dst[f*10 : (f+1)*10]
	want := []float32{20, 21, 22, 23, -5, -6, -7, -8, 0, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("frame (1,2) input = %v, want %v", got, want)
		}
	}
	// frame 0 carries mask 1
	if dst[8] != 1 || dst[9] != 1 {
		t.Errorf("frame 0 mask = %v, want 1", dst[8:10])
	}
	if err := AssembleInput(dst[:5], noisy, cond, l, nil); err == nil {
		t.Error("short dst accepted")
	}
}

func TestTimestepsSpacing(t *testing.T) {
	ts := Timesteps(1000, 5)
	want := []int{999, 749, 500, 250, 0}
	for i := range want {
		if ts[i] != want[i] {
			t.Fatalf("Timesteps(1000, 5) = %v, want %v", ts, want)
		}
	}
	if got := Timesteps(1000, 1); got[0] != 999 {
		t.Errorf("Timesteps(1000, 1) = %v", got)
	}
}

// With an oracle that knows the clean clip, deterministic DDIM lands on it
// for any step count and frame count.
func TestDDIMRecoversCleanClipWithOracle(t *testing.T) {
	s, _ := NewSchedule("cosine", DefaultSteps)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, frames := range []int{8, 40} {
		for _, steps := range []int{1, 10, 50} {
			l := Layout{B: 2, T: frames, C: 3, H: 2, W: 3}
			x0 := make([]float32, l.Len())
			for i := range x0 {
				x0[i] = float32(math.Tanh(rng.NormFloat64()))
			}
			cond := FirstFrames(x0, l)
			oracle := func(in, ts []float32) ([]float32, error) {
				// recover x_t from the input's first C channels of every frame
				fl := l.FrameLen()
				il := InputChannels(l.C) * l.H * l.W
				eps := make([]float32, l.Len())
				for f := 0; f < l.Frames(); f++ {
					ab := s.AlphaBar[int(ts[f])]
					for i := 0; i < fl; i++ {
						xt := float64(in[f*il+i])
						eps[f*fl+i] = float32((xt - math.Sqrt(ab)*float64(x0[f*fl+i])) / math.Sqrt(1-ab))
					}
				}
				return eps, nil
			}
			clip, err := SampleDDIM(context.Background(), s, oracle, cond, l, DDIMOptions{Steps: steps, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			for i := range clip {
				worst = math.Max(worst, math.Abs(float64(clip[i])-float64(x0[i])))
			}
			// a single step divides by sqrt(alphabar[999]) (cosine: ~6e-5),
			// amplifying float32 rounding of the oracle's noise
			tol := 1e-4
			if steps == 1 {
				tol = 1e-2
			}
			if worst > tol {
				t.Errorf("%d frames, %d steps: max error %g from the clean clip", frames, steps, worst)
			}
		}
	}
}

func TestDDIMCancel(t *testing.T) {
	s, _ := NewSchedule("linear", 10)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l := Layout{B: 1, T: 2, C: 1, H: 1, W: 1}
	eps := func(in, ts []float32) ([]float32, error) { return make([]float32, 2), nil }
	if _, err := SampleDDIM(ctx, s, eps, []float32{0}, l, DDIMOptions{Steps: 5}); err == nil {
		t.Error("cancelled context did not stop the sampler")
	}
}
