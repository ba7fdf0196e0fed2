package gpu

import (
	"fmt"
	"log/slog"
)

// convOp runs one convolution call of layer i (dir names which) through
// trainer/cuda, which may use cuDNN. trainer/cuda (at 3b99b9b) panics when
// cuDNN declines a geometry (a nil plan in its error path); until that is
// fixed, a panic is recovered once, the call is repeated on trainer/cuda's
// own im2col kernels, and that layer and direction skip cuDNN from then on.
func (s *Step) convOp(i int, dir string, f func() error) (err error) {
	key := fmt.Sprintf("%d/%s", i, dir)
	on, _ := s.dev.CUDNN()
	if !on || s.noDNN[key] {
		if on {
			if err := s.dev.SetCUDNN(false); err != nil {
				return err
			}
			defer s.dev.SetCUDNN(true)
		}
		return f()
	}
	panicked := false
	func() {
		defer func() {
			if r := recover(); r != nil {
				panicked = true
				slog.Debug("gpu: cuDNN failed on a convolution; using im2col for it", "layer", i, "pass", dir, "panic", r)
			}
		}()
		err = f()
	}()
	if !panicked {
		return err
	}
	s.noDNN[key] = true
	if err := s.dev.SetCUDNN(false); err != nil {
		return err
	}
	defer s.dev.SetCUDNN(true)
	return f()
}
