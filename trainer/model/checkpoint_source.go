package model

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
)

// FileSource reads tensors from a decoded safetensors file.
type FileSource struct{ F *checkpoint.File }

func (s FileSource) Names() []string { return s.F.Names() }

func (s FileSource) TensorShape(name string) ([]int, bool) {
	t, ok := s.F.Tensors[name]
	return t.Shape, ok
}

func (s FileSource) Read(name string, dst []float32) error {
	t, ok := s.F.Tensors[name]
	if !ok {
		return fmt.Errorf("no tensor %s", name)
	}
	if len(t.Data) != len(dst) {
		return fmt.Errorf("tensor %s has %d values, want %d", name, len(t.Data), len(dst))
	}
	copy(dst, t.Data)
	return nil
}
