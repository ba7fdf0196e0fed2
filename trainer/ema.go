package trainer

import (
	"fmt"
	"strconv"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// EMA of the trainable weights (Common.EMADecay > 0). The average is what
// validation measures, what previews and Sample use, and what the weights
// file holds (backbone.safetensors, temporal.safetensors): the deployable
// model. The state file beside it keeps the raw training weights under
// rawPrefix, so a resumed run continues both exactly.

// MetaEMADecay records the decay of a weights file that holds an average.
const MetaEMADecay = "ema_decay"

// rawPrefix names the raw training weights in a state file.
const rawPrefix = "raw/"

// setupEMA starts the average at the current (initial or restored) weights.
func (s *session) setupEMA(ops []*optim.Param) error {
	if s.c.EMADecay == 0 {
		return nil
	}
	e, err := optim.NewEMA(s.c.EMADecay, ops)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.ema = e
	s.ckpt.ema = e
	return nil
}

// updateEMA folds the weights of optimizer step n into the average.
func (s *session) updateEMA(n int) error {
	if s.ema == nil {
		return nil
	}
	if a, ok := s.opt.(afterUpdater); ok { // the update may still be completing
		a.afterUpdate(func() { s.ema.Update(n) })
		return nil
	}
	if err := s.opt.syncHost(); err != nil { // device optimizer state: weights live on the GPU
		return err
	}
	s.ema.Update(n)
	return nil
}

// afterUpdater is an optimizer whose update can finish in the background
// (the SD host optimizer overlapping the next forward pass): fn runs once
// the host weights are final, before syncHost returns.
type afterUpdater interface {
	afterUpdate(fn func())
}

// withEMA runs fn with the averaged weights in place of the raw ones (on
// the host and, with the GPU backend, on the device), then puts the raw
// ones back.
func (s *session) withEMA(fn func() error) error {
	if s.ema == nil {
		return fn()
	}
	if err := s.opt.syncHost(); err != nil {
		return err
	}
	s.ema.Swap()
	err := s.be.weightsChanged()
	if err == nil {
		err = fn()
	}
	s.ema.Swap()
	if uerr := s.be.weightsChanged(); err == nil {
		err = uerr
	}
	return err
}

// emaState puts the raw weights into the state file st.
func (c *checkpointer) emaState(st *checkpoint.File) {
	if c.ema == nil {
		return
	}
	for _, p := range c.params {
		st.Tensors[rawPrefix+p.Name] = checkpoint.Tensor{Shape: p.Shape, Data: p.Data}
	}
}

// emaWeights puts the average into the weights file w in place of the raw
// weights.
func (c *checkpointer) emaWeights(w *checkpoint.File) {
	if c.ema == nil {
		return
	}
	w.Metadata[MetaEMADecay] = strconv.FormatFloat(c.ema.Decay, 'g', -1, 64)
	for i, p := range c.params {
		w.Tensors[p.Name] = checkpoint.Tensor{Shape: p.Shape, Data: c.ema.Average(i)}
	}
}

// emaRestore, after the weights file w was loaded into the params, moves
// those values into the average and loads the raw weights from the state
// file st.
func (c *checkpointer) emaRestore(w, st *checkpoint.File) error {
	if c.ema == nil {
		if w.Metadata[MetaEMADecay] != "" {
			return fmt.Errorf("checkpoint %s holds an average of the weights (ema_decay %s), this run has none; "+
				"resume with that ema_decay, or move the output folder aside", c.weightsPath, w.Metadata[MetaEMADecay])
		}
		return nil
	}
	if w.Metadata[MetaEMADecay] == "" {
		return fmt.Errorf("checkpoint %s holds no average of the weights (written with ema_decay 0); "+
			"resume with ema_decay 0, or move the output folder aside", c.weightsPath)
	}
	if err := c.ema.Set(func(p *optim.Param) []float32 { return p.Data }); err != nil {
		return err
	}
	for _, p := range c.params {
		t, ok := st.Tensors[rawPrefix+p.Name]
		if !ok || len(t.Data) != len(p.Data) {
			return fmt.Errorf("checkpoint %s: no raw weights %s%s of %d values", c.statePath, rawPrefix, p.Name, len(p.Data))
		}
		copy(p.Data, t.Data)
	}
	return nil
}
