package trainer

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// newNetBackend trains a described net (the SD family's inflated UNet) on
// the Gorgonia CPU graph: the temporal parameters trainable, the loss over
// frames net.LossSkip.. of each clip; with device cuda trainer/gpu's SD
// executor (backend_sdgpu.go).
func newNetBackend(o backendOptions, p *model.Params, sh trainShape) (*backend, error) {
	if o.Device == DeviceCUDA {
		s, err := newSDGPUBackend(o, p, sh)
		if err != nil {
			return nil, err
		}
		return &backend{sd: s}, nil
	}
	g, err := model.BuildNetTrain(o.Net, p, sh.B, sh.netT(), sh.R, sh.R, func(q *model.Param) bool { return q.Temporal })
	if err != nil {
		return nil, err
	}
	return &backend{cpu: g}, nil
}

// setContext writes the conditioning sequence of the next step.
func (b *backend) setContext(ctx []float32) error {
	if b.sd != nil {
		return b.sd.SetContext(ctx)
	}
	if b.cpu == nil {
		return fmt.Errorf("the GPU backend takes no context")
	}
	return b.cpu.SetContext(ctx)
}

// setContext writes the conditioning sequence of a predictor's next run.
func setContext(p predictor, ctx []float32) error {
	cp, ok := p.(interface{ SetContext([]float32) error })
	if !ok {
		return fmt.Errorf("the net takes no context")
	}
	return cp.SetContext(ctx)
}
