package diffusion

import (
	"math"
	"slices"
	"testing"
)

// SD-1.5's schedule: alpha_bar at 0, 499 and 999 as diffusers computes them
// (betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2, cumulative
// product of 1 - beta; values from the same formula in float64 Python).
func TestSD15Schedule(t *testing.T) {
	s, err := SD15Scheduler().Schedule()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		t    int
		want float64
	}{{0, 0.99915}, {499, 0.27766965045646763}, {999, 0.004660098513077234}} {
		if got := s.AlphaBar[c.t]; math.Abs(got-c.want) > 1e-12 {
			t.Errorf("alpha_bar[%d] = %.15g, want %.15g", c.t, got, c.want)
		}
	}
	if s.Kind != "scaled_linear" || s.Steps() != 1000 {
		t.Errorf("kind %q, %d steps", s.Kind, s.Steps())
	}
}

// DDIM timesteps as DDIMScheduler.set_timesteps gives them.
func TestSDDDIMTimesteps(t *testing.T) {
	c := SD15Scheduler()
	ts, err := c.DDIMTimesteps(50)
	if err != nil {
		t.Fatal(err)
	}
	if ts[0] != 981 || ts[1] != 961 || ts[49] != 1 || len(ts) != 50 {
		t.Errorf("leading 50: %v", ts)
	}
	if p := c.DDIMPrev(1, 50); p != -19 {
		t.Errorf("prev of 1 = %d", p)
	}
	c.TimestepSpacing = "trailing"
	ts, _ = c.DDIMTimesteps(4)
	if !slices.Equal(ts, []int{999, 749, 499, 249}) {
		t.Errorf("trailing 4: %v", ts)
	}
	c.TimestepSpacing = "linspace"
	ts, _ = c.DDIMTimesteps(4)
	if !slices.Equal(ts, []int{999, 666, 333, 0}) {
		t.Errorf("linspace 4: %v", ts)
	}
	if _, err := c.DDIMTimesteps(1001); err == nil {
		t.Error("1001 steps of 1000 accepted")
	}
}

// One DDIM step with the true noise of x_t lands exactly on q_sample of
// the same x0 at the previous timestep (eta 0), and the shared variance
// noise is the same on every frame.
func TestSDDDIMStep(t *testing.T) {
	c := SD15Scheduler()
	s, _ := c.Schedule()
	x0 := []float32{0.5, -0.25, 0.1, 0.9}
	eps := []float32{1, -1, 0.5, 0.25}
	xt := make([]float32, 4)
	_ = s.QSample(xt, x0, eps, []int{981}, 4)
	x := slices.Clone(xt)
	if err := c.DDIMStep(s, x, eps, 981, 961, 0, nil); err != nil {
		t.Fatal(err)
	}
	want := make([]float32, 4)
	_ = s.QSample(want, x0, eps, []int{961}, 4)
	for i := range x {
		if math.Abs(float64(x[i]-want[i])) > 1e-5 {
			t.Errorf("x[%d] = %v, want %v", i, x[i], want[i])
		}
	}
	// eta 1 with frames of 2 values sharing one noise draw: both frames
	// move by the same amount when they start equal
	x = []float32{0.3, 0.4, 0.3, 0.4}
	e := []float32{0.1, 0.2, 0.1, 0.2}
	if err := c.DDIMStep(s, x, e, 500, 480, 1, []float32{2, -2}); err != nil {
		t.Fatal(err)
	}
	if x[0] != x[2] || x[1] != x[3] {
		t.Errorf("shared noise differs across frames: %v", x)
	}
	if err := c.DDIMStep(s, x, e, 500, 480, 1, []float32{1, 2, 3}); err == nil {
		t.Error("3 noise values for 4 latents accepted")
	}
}

func TestParseSchedulerConfig(t *testing.T) {
	c, err := ParseSchedulerConfig([]byte(`{"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
		"beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	want := SD15Scheduler()
	want.ClassName = "PNDMScheduler"
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if _, err := ParseSchedulerConfig([]byte(`{"beta_schedule": "squaredcos_cap_v2"}`)); err == nil {
		t.Error("squaredcos_cap_v2 accepted")
	}
	if _, err := ParseSchedulerConfig([]byte(`{"prediction_type": "sample"}`)); err == nil {
		t.Error("prediction_type sample accepted")
	}
}
