package model

import (
	"fmt"
	"slices"

	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// SourceReader reads tensors from a trainer/weights source, checking each
// one's shape.
func SourceReader(src weights.Source) ReadTensor {
	return func(name string, shape []int, dst []float32) error {
		ti, ok := src.Info(name)
		if !ok {
			return fmt.Errorf("tensor %s missing", name)
		}
		if !slices.Equal(ti.Shape, shape) {
			return fmt.Errorf("tensor %s has shape %v, want %v", name, ti.Shape, shape)
		}
		return src.Read(name, dst)
	}
}

// OpenVAE loads the VAE of an opened SD model (a diffusers folder's vae/
// or a single file's first_stage_model).
func OpenVAE(m *weights.Model) (*VAE, error) {
	src, ok := m.Components[weights.VAE]
	if !ok {
		return nil, fmt.Errorf("%s: no VAE (a diffusers folder needs vae/, a single file first_stage_model.*)", m.Path)
	}
	c, err := ParseVAEConfig(m.Configs[weights.VAE])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	v, err := LoadVAE(c, SourceReader(src))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	return v, nil
}

// OpenCLIPText loads the text encoder of an opened SD model (text_encoder/
// or a single file's cond_stage_model.transformer).
func OpenCLIPText(m *weights.Model) (*CLIPText, error) {
	src, ok := m.Components[weights.TextEncoder]
	if !ok {
		return nil, fmt.Errorf("%s: no text encoder (a diffusers folder needs text_encoder/, a single file cond_stage_model.transformer.*)", m.Path)
	}
	c, err := ParseCLIPTextConfig(m.Configs[weights.TextEncoder])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	t, err := LoadCLIPText(c, SourceReader(src))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	return t, nil
}
