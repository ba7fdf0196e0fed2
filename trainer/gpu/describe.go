package gpu

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// NetSpec is the network description a foreign implementation (the PyTorch
// reference benchmark, bench/torch_reference.py) rebuilds the model from:
// the same layers over the same values with the same parameter names,
// shapes and initialisations, the batch shape and the loss.
type NetSpec struct {
	Config    model.Config      `json:"config"`
	Video     bool              `json:"video"`
	B         int               `json:"batch"`
	T         int               `json:"frames"`
	H         int               `json:"height"`
	W         int               `json:"width"`
	LossSkip  int               `json:"loss_skip"`
	Input     int               `json:"input"`
	Timesteps int               `json:"timesteps"`
	Output    int               `json:"output"`
	Values    []model.Value     `json:"values"`
	Layers    []model.Layer     `json:"layers"`
	Params    []model.ParamSpec `json:"params"`
	// Trainable lists the parameters the step takes gradients for;
	// ParamCount and TrainableCount are their element counts.
	Trainable      []string `json:"trainable"`
	ParamCount     int      `json:"param_count"`
	TrainableCount int      `json:"trainable_count"`
}

// Spec describes the training step of cfg (video or backbone) for batches
// of B clips of T frames of H x W.
func Spec(cfg model.Config, video bool, B, T, H, W int) (*NetSpec, error) {
	net, err := model.Describe(cfg, video)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckSize(H, W); err != nil {
		return nil, err
	}
	s := &NetSpec{Config: cfg, Video: video, B: B, T: T, H: H, W: W, LossSkip: net.LossSkip,
		Input: net.Input, Timesteps: net.Timesteps, Output: net.Output,
		Values: net.Values, Layers: net.Layers, Params: net.Params}
	for _, p := range net.Params {
		s.ParamCount += p.Size()
		if p.Temporal == video {
			s.Trainable = append(s.Trainable, p.Name)
			s.TrainableCount += p.Size()
		}
	}
	return s, nil
}

// WriteJSON writes the spec as indented JSON.
func (s *NetSpec) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("gpu: net spec: %w", err)
	}
	return nil
}
