package gpu

import (
	"math"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
)

// Dynamic loss scaling of the fp16 training step, as PyTorch's GradScaler
// does it: the loss gradient is multiplied by the scale before the backward
// pass (so small gradients do not flush to zero in float16 operands), the
// trainable gradients are divided by it afterwards; a step whose gradients
// hold an inf or NaN (a float16 overflow) is skipped: its gradients are
// zeroed and the scale halves. After lossScaleGrowth clean steps in a row
// the scale doubles. bf16 and float32 steps use scale 1 and never skip.

const (
	lossScaleInit   = 1 << 16
	lossScaleGrowth = 2000
	lossScaleMin    = 1.0 / (1 << 24)
)

type lossScale struct {
	on      bool
	scale   float32
	clean   int  // steps since the last overflow or growth
	skipped bool // the last step overflowed
	flag    *cuda.Tensor
}

// alloc takes the overflow flag before the first step (taken later, it
// would draw a cached buffer the next step wants: a cuMemAlloc in steady
// state, measured).
func (ls *lossScale) alloc(dev *cuda.Device) error {
	if !ls.on || ls.flag != nil {
		return nil
	}
	f, err := dev.NewTensor(1)
	if err != nil {
		return err
	}
	ls.flag = f
	return nil
}

func newLossScale(p Precision) lossScale {
	if p != FP16 {
		return lossScale{scale: 1}
	}
	return lossScale{on: true, scale: lossScaleInit}
}

// LossScale reports the loss scale the next fp16 step uses and whether the
// last step was skipped for an overflow (its gradients are zero; an
// optimizer must not step on them). Other precisions: 1, false.
func (s *SDNet) LossScale() (scale float32, skipped bool) { return s.scale.scale, s.scale.skipped }

// unscaleGrads divides the trainable gradients by the loss scale, checks
// them for inf and NaN and updates the scale (no-op unless fp16).
func (s *SDNet) unscaleGrads() error {
	ls := &s.scale
	if !ls.on {
		return nil
	}
	if err := ls.alloc(s.dev); err != nil {
		return err
	}
	if s.host == nil || !s.host.unscaled { // else each went over unscaled
		if err := ls.flag.Fill(0); err != nil {
			return err
		}
		for _, q := range s.trainable {
			if err := s.unscaleGrad(q.Name); err != nil {
				return err
			}
		}
	}
	bad := make([]float32, 1)
	if err := ls.flag.Download(bad); err != nil {
		return err
	}
	ls.skipped = bad[0] != 0
	if ls.skipped {
		for _, g := range s.wgrads {
			if err := g.Fill(0); err != nil {
				return err
			}
		}
		ls.scale = float32(math.Max(lossScaleMin, float64(ls.scale)/2))
		ls.clean = 0
		return nil
	}
	if ls.clean++; ls.clean >= lossScaleGrowth {
		ls.scale *= 2
		ls.clean = 0
	}
	return nil
}

// unscaleGrad divides trainable parameter name's gradient by the loss
// scale on the device, raising the overflow flag if it holds an inf or NaN.
func (s *SDNet) unscaleGrad(name string) error {
	g := s.wgrads[name]
	return s.k.launch("sd_unscale_check", s.k.gridFor(int64(g.Len())), cuda.PtrArg(g.Ptr()), cuda.Int64Arg(int64(g.Len())),
		cuda.F32Arg(1/s.scale.scale), cuda.PtrArg(s.scale.flag.Ptr()))
}

func (ls *lossScale) free() {
	if ls.flag != nil {
		ls.flag.Free()
		ls.flag = nil
	}
}
