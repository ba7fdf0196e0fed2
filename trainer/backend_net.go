package trainer

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// newNetBackend trains a described net (the SD family's inflated UNet) on
// the Gorgonia CPU graph: the temporal parameters trainable, the loss over
// frames net.LossSkip.. of each clip. The GPU executor for these nets is
// not built yet (the full-size SD step is its own issue).
func newNetBackend(o backendOptions, p *model.Params, sh trainShape) (*backend, error) {
	if o.Device == DeviceCUDA {
		return nil, fmt.Errorf("device cuda: the GPU step of the SD family is not built yet; use device cpu (tiny models only)")
	}
	g, err := model.BuildNetTrain(o.Net, p, sh.B, sh.netT(), sh.R, sh.R, func(q *model.Param) bool { return q.Temporal })
	if err != nil {
		return nil, err
	}
	return &backend{cpu: g}, nil
}

// setContext writes the conditioning sequence of the next step.
func (b *backend) setContext(ctx []float32) error {
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
