package weights

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Component names one network of a Stable Diffusion model.
type Component string

// The components a model may hold.
const (
	UNet        Component = "unet"
	VAE         Component = "vae"
	TextEncoder Component = "text_encoder"
)

// Components lists the components in a fixed order.
var Components = []Component{UNet, VAE, TextEncoder}

// Dtype is a tensor element type, named as safetensors names it.
type Dtype string

// The floating-point element types a weight may have.
const (
	F32  Dtype = "F32"
	F16  Dtype = "F16"
	BF16 Dtype = "BF16"
)

// Size returns the bytes per element of a float dtype (0 for others).
func (d Dtype) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name  string
	Dtype Dtype
	Shape []int
}

// Numel returns the element count of the tensor.
func (t TensorInfo) Numel() int { return numel(t.Shape) }

// Bytes returns the stored size of the tensor.
func (t TensorInfo) Bytes() int64 { return int64(t.Numel()) * int64(t.Dtype.Size()) }

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// maxElements bounds a tensor's element count (2^40: far above any SD tensor),
// so a lying header cannot overflow the size arithmetic.
const maxElements = 1 << 40

// checkedNumel returns the element count of shape, or an error for negative
// dimensions or counts past maxElements.
func checkedNumel(shape []int) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d != 0 && n > maxElements/int64(d) {
			return 0, fmt.Errorf("shape %v too large", shape)
		}
		n *= int64(d)
	}
	return n, nil
}

// f16Table maps every IEEE half-precision bit pattern to its float32 value.
var f16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = halfToFloat(uint16(i))
	}
	return &t
}()

// halfToFloat widens an IEEE half: its exponent and mantissa bits placed in
// a float32 and scaled by 2^112 (exact, subnormals included); Inf and NaN
// get float32's all-ones exponent.
func halfToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	rest := uint32(h & 0x7fff)
	if rest >= 0x7c00 {
		return math.Float32frombits(sign | 0x7f800000 | (rest&0x3ff)<<13)
	}
	return math.Float32frombits(sign | math.Float32bits(math.Float32frombits(rest<<13)*0x1p112))
}

// decodeInto converts little-endian values of dtype d in b to float32 in dst
// (len(dst) == len(b)/d.Size()).
func decodeInto(dst []float32, b []byte, d Dtype) {
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case F16:
		t := f16Table
		for i := range dst {
			dst[i] = t[binary.LittleEndian.Uint16(b[2*i:])]
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	}
}
