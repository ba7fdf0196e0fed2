package trainer

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"strconv"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// Metadata keys written into checkpoints.
const (
	MetaStep         = "step"
	MetaFormat       = "format"
	MetaModelConfig  = "model_config"
	MetaConfigHash   = "config_sha256"
	MetaBackboneHash = "backbone_sha256"
	MetaRNG          = "rng_state"
	MetaSeed         = "seed"
)

// checkpointer writes and restores a run's checkpoint: the trainable weights
// (weightsFile, with meta) and, beside them, the optimizer moments and the
// RNG state (stateFile). The state file is written first, the weights file
// last; both carry the step, and a resume accepts them only when the steps
// agree, so a crash between the two writes is detected.
type checkpointer struct {
	weightsPath, statePath string
	format                 string
	meta                   map[string]string
	params                 []*optim.Param
	opt                    optimizer
	// rng is the noise stream; rngState, when set, returns the state to save
	// instead of rng's own (the session's prefetcher may have drawn ahead).
	rng      *rand.PCG
	rngState func() ([]byte, error)
	// ema, when set, is the average the weights file holds (ema.go).
	ema *optim.EMA
	// restoredTotal is MetaTotalSteps of the restored checkpoint.
	restoredTotal int
}

// save writes the checkpoint of step.
func (c *checkpointer) save(step int) error {
	if err := c.opt.syncHost(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	st, err := c.opt.state()
	if err != nil {
		return fmt.Errorf("checkpoint: optimizer state: %w", err)
	}
	var rb []byte
	if c.rngState != nil {
		rb, err = c.rngState()
	} else {
		rb, err = c.rng.MarshalBinary()
	}
	if err != nil {
		return fmt.Errorf("rng state: %w", err)
	}
	st.Metadata[MetaRNG] = base64.StdEncoding.EncodeToString(rb)
	st.Metadata[MetaStep] = strconv.Itoa(step)
	st.Metadata[MetaFormat] = c.format + "-state"
	maps.Copy(st.Metadata, c.meta)
	c.emaState(st)
	if err := checkpoint.Write(c.statePath, st); err != nil {
		return err
	}
	w := checkpoint.New()
	maps.Copy(w.Metadata, c.meta)
	w.Metadata[MetaStep] = strconv.Itoa(step)
	w.Metadata[MetaFormat] = c.format
	for _, p := range c.params {
		w.Tensors[p.Name] = checkpoint.Tensor{Shape: p.Shape, Data: p.Data}
	}
	c.emaWeights(w)
	return checkpoint.Write(c.weightsPath, w)
}

// errNoCheckpoint means there is nothing to resume from.
var errNoCheckpoint = errors.New("no checkpoint")

// restore loads weights, moments and RNG state and returns the step they
// belong to and the total the run that wrote them was planned for (0:
// not recorded). Metadata listed in mustMatch must equal the run's, and so
// must the recorded RunSettings; a mismatch is an error naming both values.
func (c *checkpointer) restore(mustMatch ...string) (step, total int, err error) {
	step, err = c.restoreStep(mustMatch)
	if err != nil {
		return 0, 0, err
	}
	return step, c.restoredTotal, nil
}

func (c *checkpointer) restoreStep(mustMatch []string) (int, error) {
	w, err := checkpoint.Read(c.weightsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, errNoCheckpoint
	}
	if err != nil {
		return 0, err
	}
	st, err := checkpoint.Read(c.statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s without %s", errNoCheckpoint, filepath.Base(c.weightsPath), filepath.Base(c.statePath))
	}
	if err != nil {
		return 0, err
	}
	for _, k := range mustMatch {
		if w.Metadata[k] != c.meta[k] {
			return 0, fmt.Errorf("checkpoint %s: %s is %s, this run's is %s", c.weightsPath, k,
				checkpoint.Short(w.Metadata[k]), checkpoint.Short(c.meta[k]))
		}
	}
	if err := diffSettings(c.weightsPath, w.Metadata, c.meta); err != nil {
		return 0, err
	}
	c.restoredTotal = totalSteps(w.Metadata)
	step, err := strconv.Atoi(w.Metadata[MetaStep])
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s: bad step %q", c.weightsPath, w.Metadata[MetaStep])
	}
	if st.Metadata[MetaStep] != w.Metadata[MetaStep] {
		return 0, fmt.Errorf("%w: %s is at step %s but %s at step %s (interrupted between the two writes)", errNoCheckpoint,
			filepath.Base(c.weightsPath), w.Metadata[MetaStep], filepath.Base(c.statePath), st.Metadata[MetaStep])
	}
	if err := loadInto(c.params, w, c.weightsPath); err != nil {
		return 0, err
	}
	if err := c.emaRestore(w, st); err != nil {
		return 0, err
	}
	if err := c.opt.loadState(st); err != nil {
		return 0, fmt.Errorf("%s: %w", c.statePath, err)
	}
	rb, err := base64.StdEncoding.DecodeString(st.Metadata[MetaRNG])
	if err == nil {
		err = c.rng.UnmarshalBinary(rb)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: rng state: %w", c.statePath, err)
	}
	return step, nil
}

// loadInto copies tensors of f into params by name; every param must be
// present with its shape.
func loadInto(params []*optim.Param, f *checkpoint.File, path string) error {
	for _, p := range params {
		if err := copyTensor(f, "checkpoint "+path, p.Name, p.Shape, p.Data); err != nil {
			return err
		}
	}
	return nil
}

// loadParams copies tensors of f into the model parameters ps by name;
// every one must be present with its shape. label names f in the errors.
func loadParams(ps []*model.Param, f *checkpoint.File, label string) error {
	for _, q := range ps {
		if err := copyTensor(f, label, q.Name, q.Shape, q.Data); err != nil {
			return err
		}
	}
	return nil
}

// copyTensor copies f's tensor name into dst, refusing a missing tensor or
// one of another shape than shape (dst's).
func copyTensor(f *checkpoint.File, label, name string, shape []int, dst []float32) error {
	t, ok := f.Tensors[name]
	if !ok {
		return fmt.Errorf("%s: no tensor %s", label, name)
	}
	if len(t.Data) != len(dst) || !sameShape(t.Shape, shape) {
		return fmt.Errorf("%s: tensor %s has shape %v, the model wants %v", label, name, t.Shape, shape)
	}
	copy(dst, t.Data)
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
