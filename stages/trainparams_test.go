package stages

import (
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
)

// optimizer_state is a param of pretrain and train: host and device pass
// config validation, anything else does not; device with device cpu stops
// the stage with a message saying what to change.
func TestOptimizerStateParam(t *testing.T) {
	withPretrain := func(params string) string {
		return strings.Replace(trainingYAML, "params: {resolution: 16, batch: 2, steps: 4,", "params: {"+params+", resolution: 16, batch: 2, steps: 4,", 1)
	}
	withTrain := func(params string) string {
		return strings.Replace(trainingYAML, "params: {resolution: 16, frames_length: 4,", "params: {"+params+", resolution: 16, frames_length: 4,", 1)
	}
	for _, y := range []string{withPretrain("optimizer_state: host"), withPretrain("optimizer_state: device, device: cpu"),
		withTrain("optimizer_state: device, device: auto")} {
		if y == trainingYAML {
			t.Fatal("the test's YAML edit did not apply")
		}
		pipelinetest.New(t, All(), y) // fails the test on a config error
	}
	for _, y := range []string{withPretrain("optimizer_state: gpu"), withTrain("optimizer_state: 1")} {
		_, err := pipeline.Load("test.yaml", t.TempDir(), []byte("workdir: "+t.TempDir()+"\n"+y), pipeline.NewRegistry(All()))
		if err == nil || !pipelinetest.IsConfigError(err) || !strings.Contains(err.Error(), "optimizer_state") {
			t.Errorf("bad optimizer_state: err = %v, want a config error naming optimizer_state", err)
		}
	}

	p := pipelinetest.New(t, All(), withPretrain("optimizer_state: device, device: cpu"))
	_, err := p.TryRun(t.Context(), pipeline.Options{Stages: []string{"pretrain"}})
	if err == nil || !strings.Contains(err.Error(), "optimizer_state device keeps AdamW's moments on the GPU and needs device cuda, but device is cpu") {
		t.Errorf("pretrain with optimizer_state device on the CPU: err = %v", err)
	}
}

func TestRaisesTotal(t *testing.T) {
	base := func(kv ...any) map[string]any {
		m := map[string]any{"steps": 300.0, "epochs": 0.0, "lr": 0.001}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name     string
		old, cur map[string]any
		want     bool
	}{
		{"steps raised", base(), base("steps", 500.0), true},
		{"steps lowered", base(), base("steps", 200.0), false},
		{"nothing changed", base(), base(), false},
		{"steps raised and lr changed", base(), base("steps", 500.0, "lr", 0.002), false},
		{"epochs raised", base("epochs", 2.0), base("epochs", 3.0), true},
		{"steps raised under epochs", base("epochs", 2.0), base("epochs", 2.0, "steps", 900.0), false},
		{"steps to epochs", base(), base("epochs", 5.0), false},
		{"a param added", base(), base("cond_gap", 4.0), false},
	} {
		if got := raisesTotal(c.old, c.cur); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
