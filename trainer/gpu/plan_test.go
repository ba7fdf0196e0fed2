package gpu

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// TestPlanKeepsWhatIsRead replays the plan's frees over a forward and a
// backward walk and checks that every value a layer reads is still alive,
// that everything is freed by the end, and that frozen layers keep nothing
// for weight gradients.
func TestPlanKeepsWhatIsRead(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   model.Config
		video bool
	}{{"tiny-video", model.Tiny(), true}, {"timelapse-video", model.Timelapse(), true},
		{"tiny-backbone", model.Tiny(), false}} {
		t.Run(c.name, func(t *testing.T) {
			net, err := model.Describe(c.cfg, c.video)
			if err != nil {
				t.Fatal(err)
			}
			p, err := newPlan(net, 2, 3, 16, 16, func(s model.ParamSpec) bool { return s.Temporal == c.video })
			if err != nil {
				t.Fatal(err)
			}
			alive := map[int]bool{net.Input: true, net.Timesteps: true}
			free := func(v int) {
				if !alive[v] {
					t.Fatalf("value %d freed twice or never made", v)
				}
				delete(alive, v)
			}
			for i, l := range net.Layers {
				for _, v := range l.In {
					if !alive[v] {
						t.Fatalf("forward layer %d (%s %s) reads freed value %d", i, l.Kind, l.Name, v)
					}
				}
				alive[l.Out] = true
				for _, v := range p.freeAfterFwd[i] {
					free(v)
				}
			}
			delete(alive, net.Output) // the loss backward frees the prediction
			backwards := 0
			for i := len(net.Layers) - 1; i >= 0; i-- {
				if !p.backward[i] {
					continue
				}
				backwards++
				l := net.Layers[i]
				for j, v := range l.In {
					if p.saves[i][j] && !alive[v] {
						t.Fatalf("backward layer %d (%s %s) reads freed value %d", i, l.Kind, l.Name, v)
					}
				}
				for _, v := range p.freeAfterBwd[i] {
					free(v)
				}
			}
			delete(alive, net.Input)
			delete(alive, net.Timesteps)
			if len(alive) != 0 {
				t.Errorf("%d values never freed: %v", len(alive), alive)
			}
			if backwards == 0 {
				t.Fatal("no layer runs backward")
			}
			// A frozen conv on the gradient path keeps nothing: its input
			// is only needed for a weight gradient that is never computed.
			frozenConvs := 0
			for i, l := range net.Layers {
				if l.Kind == model.Conv2D && p.backward[i] && !p.paramTrainable(l.Params) {
					frozenConvs++
					if p.saves[i][0] {
						t.Errorf("frozen conv %s keeps its input", l.Name)
					}
				}
			}
			if c.video && frozenConvs == 0 {
				t.Error("the video model has no frozen conv on the gradient path")
			}
			// A forward-only pass frees every value after its last reader.
			alive = map[int]bool{net.Input: true, net.Timesteps: true}
			for i, l := range net.Layers {
				for _, v := range l.In {
					if !alive[v] {
						t.Fatalf("eval layer %d (%s %s) reads freed value %d", i, l.Kind, l.Name, v)
					}
				}
				alive[l.Out] = true
				for _, v := range p.freeAfterEval[i] {
					free(v)
				}
			}
			if len(alive) != 3 || !alive[net.Output] {
				t.Errorf("after a forward-only pass %d values are alive, want input, timesteps and output", len(alive))
			}
			t.Logf("%d layers, %d with backward, %d frozen convs on the gradient path, %.1f M floats saved for backward",
				len(net.Layers), backwards, frozenConvs, float64(p.savedFloats())/1e6)
		})
	}
}

func TestPlanRequiresGrad(t *testing.T) {
	net, err := model.Describe(model.Tiny(), true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPlan(net, 1, 2, 16, 16, func(s model.ParamSpec) bool { return s.Temporal })
	if err != nil {
		t.Fatal(err)
	}
	// The time embedding MLP and conv_in are frozen and upstream of every
	// temporal layer: no gradient reaches them.
	for i, l := range net.Layers {
		if strings.HasPrefix(l.Name, "time_embed") || l.Name == "conv_in" || l.Kind == model.TimestepEmbed {
			if p.backward[i] {
				t.Errorf("layer %s (%s) runs backward", l.Name, l.Kind)
			}
		}
		if l.Temporal && l.Kind != model.Attention && !p.backward[i] {
			t.Errorf("temporal layer %s does not run backward", l.Name)
		}
	}
	if !p.reqGrad[net.Output] {
		t.Error("no gradient reaches the output")
	}
	fused := 0
	for i := range net.Layers {
		if p.fusedGN[i] {
			fused++
			if net.Layers[i+1].Kind != model.SiLU {
				t.Errorf("fused group norm %s is not followed by a SiLU", net.Layers[i].Name)
			}
		}
	}
	if fused == 0 {
		t.Error("no group norm fused with its SiLU")
	}
	if _, err := newPlan(net, 1, 2, 15, 16, func(model.ParamSpec) bool { return true }); err == nil {
		t.Error("a frame size the UNet cannot halve was accepted")
	}
}

func TestSpecJSON(t *testing.T) {
	s, err := Spec(model.Timelapse(), true, 4, 25, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	p, err := model.NewParams(model.Timelapse(), 1)
	if err != nil {
		t.Fatal(err)
	}
	total, temporal := p.Count()
	if s.ParamCount != total || s.TrainableCount != temporal {
		t.Errorf("spec counts %d/%d, params %d/%d", s.ParamCount, s.TrainableCount, total, temporal)
	}
	if int(back["param_count"].(float64)) != total || len(back["layers"].([]any)) != len(s.Layers) {
		t.Errorf("JSON round trip lost counts or layers")
	}
	for _, name := range s.Trainable {
		if !model.IsTemporal(name) {
			t.Errorf("trainable %s is not temporal", name)
		}
	}
}

// The GPU executor writes each parameter gradient once, so it refuses a
// net in which two layers share a parameter (model.Net.Check) rather than
// return only one layer's share of its gradient.
func TestPlanRefusesSharedParameter(t *testing.T) {
	net, err := model.Describe(model.Tiny(), true)
	if err != nil {
		t.Fatal(err)
	}
	var tconvs []int
	for i, l := range net.Layers {
		if l.Kind == model.TemporalConv {
			tconvs = append(tconvs, i)
		}
	}
	if len(tconvs) < 2 {
		t.Fatalf("want two temporal convs, got %d", len(tconvs))
	}
	net.Layers[tconvs[1]].Params = net.Layers[tconvs[0]].Params
	_, err = newPlan(net, 1, 3, 16, 16, func(s model.ParamSpec) bool { return s.Temporal })
	if err == nil || !strings.Contains(err.Error(), net.Layers[tconvs[0]].Params[0]) {
		t.Fatalf("newPlan: err %v, want one naming the shared parameter", err)
	}
}
