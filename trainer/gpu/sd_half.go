package gpu

import (
	"fmt"
	"os"
	"strings"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Precision is how the SD executor stores the frozen backbone and runs its
// products (SDOptions.Precision). Trainable parameters always keep float32
// master copies and float32 gradients; every product accumulates in float32.
type Precision string

const (
	// FP32: float32 storage; products in strict float32 when the device
	// was opened without TF32 (cuda.Options.TF32), TF32 when it was.
	FP32 Precision = "fp32"
	// TF32: float32 storage, TF32 tensor-core products (the device must be
	// opened with cuda.Options.TF32 for cuBLAS and cuDNN to use them).
	TF32 Precision = "tf32"
	// BF16: frozen linear and convolution weights stored in bfloat16, their
	// products on bfloat16 operands with float32 accumulation; the frozen
	// layers' attention too.
	BF16 Precision = "bf16"
	// FP16: as BF16 with float16 operands (10 significant bits, range
	// 6e-5..65504), and a dynamic loss scale in the training step
	// (SDNet.LossScale).
	FP16 Precision = "fp16"
)

// ParsePrecision reads a stage's `precision:` value: fp32, tf32, bf16 or
// fp16 (also float32, bfloat16, float16); "" is fp32.
func ParsePrecision(s string) (Precision, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "fp32", "float32":
		return FP32, nil
	case "tf32":
		return TF32, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "fp16", "float16", "half":
		return FP16, nil
	}
	return "", fmt.Errorf("gpu: precision %q: want fp32, tf32, bf16 or fp16", s)
}

// Half reports whether p stores the frozen backbone in 16 bits.
func (p Precision) Half() bool { return p == BF16 || p == FP16 }

// dataType is the cuBLAS/cuDNN type of p's 16-bit operands (TypeF32 when
// p is not half).
func (p Precision) dataType() cuda.DataType {
	switch p {
	case BF16:
		return cuda.TypeBF16
	case FP16:
		return cuda.TypeF16
	}
	return cuda.TypeF32
}

// precision is the precision o asks for: Precision, else BF16 when the
// older BF16 flag is set, else FP32.
func (o SDOptions) precision() (Precision, error) {
	if o.Precision == "" {
		if o.BF16 {
			return BF16, nil
		}
		return FP32, nil
	}
	p, err := ParsePrecision(string(o.Precision))
	if err != nil {
		return "", err
	}
	if o.BF16 && p != BF16 {
		return "", fmt.Errorf("gpu: SDOptions.BF16 set with precision %s", p)
	}
	return p, nil
}

// halfConvs stores the frozen convolution filters in 16 bits in the half
// precisions (false: only the linear weights, the first bf16 mode; for
// benchmarks).
var halfConvs = true

// convNHWC makes the 16-bit convolutions channels-last (filters stored
// (K, KH, KW, C), activations transposed to NHWC around each convolution
// by the conversion kernel): cuDNN's NHWC tensor-core kernels ran 1.2-1.4x
// faster than its NCHW ones on an H200 (bench/RESULTS.md).
// PIPELINE_SD_CONV_NHWC=0 keeps NCHW.
var convNHWC = os.Getenv("PIPELINE_SD_CONV_NHWC") != "0"

func (s *SDNet) halfConv() cuda.HalfConv {
	return cuda.HalfConv{Type: s.prec.dataType(), NHWC: convNHWC}
}

// halfFilterLayout returns a (K, C, KH, KW) filter in the layout the 16-bit
// convolutions read: itself, or (K, KH, KW, C) when convNHWC.
func halfFilterLayout(w []float32, shape []int) []float32 {
	if !convNHWC {
		return w
	}
	k, c, khw := shape[0], shape[1], shape[2]*shape[3]
	out := make([]float32, len(w))
	for o := 0; o < k; o++ {
		for i := 0; i < c; i++ {
			for j := 0; j < khw; j++ {
				out[(o*khw+j)*c+i] = w[(o*c+i)*khw+j]
			}
		}
	}
	return out
}

// weightShape is the shape of parameter name, float32 or 16-bit.
func (s *SDNet) weightShape(name string) []int {
	if t := s.weights[name]; t != nil {
		return t.Shape
	}
	return s.halfShape[name]
}

// conv2DForward is y = conv(x, w) + b on the layer's weights: 16-bit
// operands with float32 accumulation where the filter is stored in 16 bits.
func (s *SDNet) conv2DForward(l model.Layer, y, x *cuda.Tensor, cs nn.Conv2DShape) error {
	if w := s.halfW[l.Params[0]]; w != nil {
		return s.dev.Conv2DForwardHalf(y, x, w, s.param(l, 1), cs, s.halfConv())
	}
	return s.dev.Conv2DForward(y, x, s.param(l, 0), s.param(l, 1), cs)
}

// conv2DBackwardData is dx from dy through the layer's filter.
func (s *SDNet) conv2DBackwardData(l model.Layer, dx, dy *cuda.Tensor, cs nn.Conv2DShape) error {
	if wf, err := s.widenedWeight(l); err != nil || wf != nil {
		if err != nil {
			return err
		}
		defer wf.Free()
		return s.dev.Conv2DBackwardData(dx, dy, wf, cs)
	}
	if w := s.halfW[l.Params[0]]; w != nil {
		return s.dev.Conv2DBackwardDataHalf(dx, dy, w, cs, s.halfConv())
	}
	return s.dev.Conv2DBackwardData(dx, dy, s.param(l, 0), cs)
}

// halfAttention reports whether attention layer l runs on bfloat16
// operands (sd_bf16.go): in the bf16 precision, except the temporal
// (trainable) layers, whose products stay float32 so their gradients keep
// float32 accuracy. fp16 keeps attention float32 (TF32 where the device
// allows it): bfloat16 attention would cost it 3 of its bits.
func (s *SDNet) halfAttention(l model.Layer) bool {
	return s.prec == BF16 && !l.Temporal && bf16Attention
}

// bf16Attention: false keeps the bf16 mode's attention float32 too (for
// the accuracy tests, sd_t16_gpu_test.go).
var bf16Attention = true
