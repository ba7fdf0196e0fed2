package trainer

import (
	"fmt"
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/gpu"
	"github.com/timelapse-ml/pipeline/trainer/optim"
)

// optimizer is AdamW as a session drives it: on the host (optim.AdamW over
// the backend's host gradients, the updated weights then copied to the
// device; optimizer_state host) or on the GPU (gpu.DeviceAdamW, moments and
// update on the card; optimizer_state device). Both write and read the same
// checkpoint format, so a run may switch between them across a resume.
type optimizer interface {
	// step applies one update from the backend's last step.
	step() (optim.Stats, error)
	setSchedule(optim.Schedule)
	state() (*checkpoint.File, error)
	loadState(*checkpoint.File) error
	// syncHost makes the host copies of the trainable weights current (for
	// checkpoints and host-side previews).
	syncHost() error
	close()
}

// newOptimizer returns the optimizer over ops (the host views of be's
// trainable parameters) that state asks for.
func newOptimizer(state OptimizerState, log *slog.Logger, be *backend, cfg optim.Config, ops []*optim.Param) (optimizer, error) {
	state, err := state.check()
	if err != nil {
		return nil, err
	}
	if be.sd != nil {
		return newSDOptimizer(state, log, be, cfg, ops)
	}
	if state == OptimizerHost {
		o, err := optim.New(cfg, ops)
		if err != nil {
			return nil, err
		}
		return &hostOptimizer{opt: o, be: be}, nil
	}
	if be.gpu == nil {
		return nil, fmt.Errorf("optimizer_state device needs the GPU backend (device cuda)")
	}
	noDecay := map[string]bool{}
	for _, p := range ops {
		noDecay[p.Name] = p.NoDecay
	}
	d, err := gpu.NewDeviceAdamW(be.gpu, cfg, func(name string) bool { return noDecay[name] })
	if err != nil {
		return nil, err
	}
	log.Info("AdamW state on the GPU (optimizer_state device)", slog.Int64("bytes", d.Bytes()))
	return &deviceOptimizer{opt: d}, nil
}

// hostOptimizer is optim.AdamW on the host.
type hostOptimizer struct {
	opt *optim.AdamW
	be  *backend
}

func (h *hostOptimizer) step() (optim.Stats, error) {
	st, err := h.opt.Step(h.be.grads())
	if err != nil {
		return st, err
	}
	return st, h.be.weightsChanged()
}

func (h *hostOptimizer) setSchedule(s optim.Schedule)       { h.opt.SetSchedule(s) }
func (h *hostOptimizer) state() (*checkpoint.File, error)   { return h.opt.State(), nil }
func (h *hostOptimizer) loadState(f *checkpoint.File) error { return h.opt.LoadState(f) }
func (h *hostOptimizer) syncHost() error                    { return nil }
func (h *hostOptimizer) close()                             {}

// deviceOptimizer is gpu.DeviceAdamW; the host weights go stale after a
// step until syncHost downloads them.
type deviceOptimizer struct {
	opt   *gpu.DeviceAdamW
	stale bool
}

func (d *deviceOptimizer) step() (optim.Stats, error) {
	st, err := d.opt.Step()
	if err == nil {
		d.stale = true
	}
	return st, err
}

func (d *deviceOptimizer) setSchedule(s optim.Schedule)       { d.opt.SetSchedule(s) }
func (d *deviceOptimizer) state() (*checkpoint.File, error)   { return d.opt.State() }
func (d *deviceOptimizer) loadState(f *checkpoint.File) error { return d.opt.LoadState(f) }

func (d *deviceOptimizer) syncHost() error {
	if !d.stale {
		return nil
	}
	if err := d.opt.DownloadWeights(); err != nil {
		return err
	}
	d.stale = false
	return nil
}

func (d *deviceOptimizer) close() { d.opt.Free() }
