package trainer

import (
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// loadParams (backbone, temporal and SD temporal files) and loadInto
// (training checkpoints) copy tensors by name and name the file, the
// tensor and the shapes when one is missing or has another shape.
func TestLoadParamsCopiesAndRefuses(t *testing.T) {
	newParam := func() *model.Param {
		return &model.Param{ParamSpec: model.ParamSpec{Name: "w", Shape: []int{2, 3}}, Data: make([]float32, 6)}
	}
	good := &checkpoint.File{Tensors: map[string]checkpoint.Tensor{"w": {Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}}}}
	q := newParam()
	if err := loadParams([]*model.Param{q}, good, "backbone b.safetensors"); err != nil || q.Data[5] != 6 {
		t.Fatalf("loadParams: %v, data %v", err, q.Data)
	}
	for _, tc := range []struct {
		f    *checkpoint.File
		want string
	}{
		{&checkpoint.File{Tensors: map[string]checkpoint.Tensor{}}, "backbone b.safetensors: no tensor w"},
		{&checkpoint.File{Tensors: map[string]checkpoint.Tensor{"w": {Shape: []int{3, 2}, Data: make([]float32, 6)}}},
			"backbone b.safetensors: tensor w has shape [3 2], the model wants [2 3]"},
	} {
		if err := loadParams([]*model.Param{newParam()}, tc.f, "backbone b.safetensors"); err == nil || err.Error() != tc.want {
			t.Errorf("loadParams: %v, want %q", err, tc.want)
		}
	}
	op := &optim.Param{Name: "w", Shape: []int{2, 3}, Data: make([]float32, 6)}
	if err := loadInto([]*optim.Param{op}, good, "state.safetensors"); err != nil || op.Data[0] != 1 {
		t.Fatalf("loadInto: %v, data %v", err, op.Data)
	}
	want := "checkpoint state.safetensors: no tensor w"
	if err := loadInto([]*optim.Param{op}, &checkpoint.File{}, "state.safetensors"); err == nil || err.Error() != want {
		t.Errorf("loadInto: %v, want %q", err, want)
	}
}
