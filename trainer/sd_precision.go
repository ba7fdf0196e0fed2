package trainer

import (
	"fmt"
	"log/slog"

	"github.com/timelapse-ml/pipeline/trainer/gpu"
)

// Precision is the arithmetic of the SD family's passes on the GPU; the
// CPU always computes in float32.
type Precision string

// The SD executor's precisions.
const (
	// PrecisionFP32 is strict float32.
	PrecisionFP32 Precision = "fp32"
	// PrecisionTF32 is float32 storage with TF32 tensor-core products
	// (about 10 mantissa bits in the products, float32 accumulation).
	PrecisionTF32 Precision = "tf32"
	// PrecisionBF16 stores the frozen weights in bfloat16 and runs the
	// products on bfloat16 operands with float32 accumulation.
	PrecisionBF16 Precision = "bf16"
	// PrecisionFP16 is PrecisionBF16 with float16 operands.
	PrecisionFP16 Precision = "fp16"
)

// Precisions lists the accepted Precision values (for a config's enum).
var Precisions = []string{string(PrecisionFP32), string(PrecisionTF32), string(PrecisionBF16), string(PrecisionFP16)}

// precisionOr is p, or tf32/fp32 from the older TF32 switch when p is "".
func precisionOr(p Precision, tf32 bool) Precision {
	switch {
	case p != "":
		return p
	case tf32:
		return PrecisionTF32
	}
	return PrecisionFP32
}

// sdGPU maps p to the device's TF32 switch and the SD executor's options:
// the one place that knows which precisions the executor has.
func (p Precision) sdGPU() (tf32 bool, o gpu.SDOptions, err error) {
	switch p {
	case "", PrecisionFP32:
		o.Precision = gpu.FP32
		return false, o, nil
	case PrecisionTF32:
		o.Precision = gpu.TF32
		return true, o, nil
	case PrecisionBF16:
		// the layers left in float32 (norms, the trainable temporal
		// layers) use TF32 products
		o.Precision = gpu.BF16
		return true, o, nil
	case PrecisionFP16:
		o.Precision = gpu.FP16
		return true, o, nil
	}
	return false, o, fmt.Errorf("precision %q: want one of %v", string(p), Precisions)
}

// sdStepOptions resolves the precision of an SD training step (c's device
// resolved): on the GPU the device's TF32 switch (set in c) and the SD
// executor's options; on the CPU fp32, logged when another was asked for.
func sdStepOptions(c *Common, p Precision, checkpointing bool) (Precision, gpu.SDOptions, error) {
	p = precisionOr(p, c.TF32)
	if c.Device != DeviceCUDA {
		if p != PrecisionFP32 {
			c.Log.Info("training on the CPU in fp32", slog.String("precision", string(p)), slog.String("note", "the precision applies on the GPU"))
		}
		return PrecisionFP32, gpu.SDOptions{}, nil
	}
	tf32, o, err := p.sdGPU()
	if err != nil {
		return p, o, err
	}
	c.TF32 = tf32
	setSDCheckpointing(&o, checkpointing, c.Log)
	return p, o, nil
}
