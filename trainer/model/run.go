package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

func data(n *G.Node) []float32 {
	if v := n.Value(); v != nil {
		if d, ok := v.Data().([]float32); ok {
			return d
		}
	}
	return nil
}

// run executes the whole graph once with a TapeMachine.
func (f *ForwardGraph) run() error {
	if f.machine == nil {
		f.machine = G.NewTapeMachine(f.Graph.G)
	}
	defer f.machine.Reset()
	if err := f.machine.RunAll(); err != nil {
		return fmt.Errorf("model: run graph: %w", err)
	}
	return nil
}

// Close releases the graph's machine.
func (f *ForwardGraph) Close() {
	if f.machine != nil {
		f.machine.Close()
		f.machine = nil
	}
}

func setInput(n *G.Node, src []float32, what string) error {
	dst := data(n)
	if len(dst) != len(src) {
		return fmt.Errorf("model: %s has %d values, want %d (shape %v)", what, len(src), len(dst), n.Shape())
	}
	copy(dst, src)
	return nil
}

// SetContext writes the conditioning sequence (B*T, Length, Channels) the
// next runs read (a net with a Context value only).
func (f *ForwardGraph) SetContext(ctx []float32) error {
	if f.Context == nil {
		return fmt.Errorf("model: this net takes no context")
	}
	return setInput(f.Context, ctx, "context")
}

// Predict runs the network on input (B*T, InChannels, H, W) and per-frame
// timesteps (B*T) and returns the predicted noise (B*T, OutChannels, H, W).
// The returned slice is owned by the graph and valid until the next run.
func (f *ForwardGraph) Predict(input, timesteps []float32) ([]float32, error) {
	if err := setInput(f.Input, input, "input"); err != nil {
		return nil, err
	}
	if err := setInput(f.Timesteps, timesteps, "timesteps"); err != nil {
		return nil, err
	}
	if err := f.run(); err != nil {
		return nil, err
	}
	return data(f.Output), nil
}

// Step runs forward and backward on one batch and returns the loss; the
// gradients are then readable with Grad(i) until the next run.
func (t *TrainGraph) Step(input, timesteps, target []float32) (float32, error) {
	if err := setInput(t.Input, input, "input"); err != nil {
		return 0, err
	}
	if err := setInput(t.Timesteps, timesteps, "timesteps"); err != nil {
		return 0, err
	}
	if err := setInput(t.Target, target, "target"); err != nil {
		return 0, err
	}
	if err := t.run(); err != nil {
		return 0, err
	}
	return t.LossValue()
}

// LossValue returns the loss of the last run.
func (t *TrainGraph) LossValue() (float32, error) {
	switch v := t.Loss.Value().(type) {
	case *G.F32:
		return float32(*v), nil
	default:
		return 0, fmt.Errorf("model: loss value is %T", v)
	}
}

// Grad returns the gradient of Trainable[i] from the last run (owned by the
// graph, valid until the next run).
func (t *TrainGraph) Grad(i int) []float32 { return data(t.Grads[i]) }
