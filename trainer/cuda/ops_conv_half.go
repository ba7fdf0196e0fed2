package cuda

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Half-precision convolutions: a 16-bit filter (float16 or bfloat16),
// float32 activations converted to 16 bits around the convolution by a
// fused kernel (kernels/half.cu), and cuDNN on tensor cores accumulating in
// float32 (PSEUDO_HALF / PSEUDO_BFLOAT16). Frames go through in chunks so
// the 16-bit copies stay small (halfChunkValues per operand).

// HalfConv says how the 16-bit operands of a convolution are stored.
type HalfConv struct {
	Type DataType // TypeF16 or TypeBF16
	// NHWC: the filter is stored (K, KH, KW, C) and the 16-bit activation
	// copies are channels-last; otherwise (K, C, KH, KW) and NCHW.
	NHWC bool
}

// halfChunkValues bounds the 16-bit copy of one operand of a convolution
// chunk (64 MiB).
var halfChunkValues = 32 << 20

func (h HalfConv) validate() error {
	if h.Type != TypeF16 && h.Type != TypeBF16 {
		return fmt.Errorf("cuda: half convolution type %d: want TypeF16 or TypeBF16", h.Type)
	}
	return nil
}

func (h HalfConv) bf16() int {
	if h.Type == TypeBF16 {
		return 1
	}
	return 0
}

func (h HalfConv) dnnType() int {
	if h.Type == TypeBF16 {
		return dnnDataBFloat16
	}
	return dnnDataHalf
}

// HalfLen is the number of float32 slots a tensor of n 16-bit values takes.
func HalfLen(n int) int { return (n + 1) / 2 }

// NewHalf allocates room for n 16-bit values (a tensor of HalfLen(n) slots).
func (d *Device) NewHalf(n int) (*Tensor, error) { return d.NewTensor(HalfLen(n)) }

// ToHalf writes x rounded to t's 16-bit type (round to nearest even,
// overflow to inf) into h, HalfLen(x.Len()) slots.
func (d *Device) ToHalf(h, x *Tensor, t DataType) error {
	hc := HalfConv{Type: t}
	if err := hc.validate(); err != nil {
		return err
	}
	if err := d.checkOperands("to half", operand{"h", h, HalfLen(x.Len())}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.elementwise("half_from_f32_flat", x.Len(), TensorArg(h), TensorArg(x), IntArg(x.Len()), IntArg(hc.bf16()))
}

// FromHalf writes the n 16-bit values of h as float32 into y (n = y.Len()).
func (d *Device) FromHalf(y, h *Tensor, t DataType) error {
	hc := HalfConv{Type: t}
	if err := hc.validate(); err != nil {
		return err
	}
	if err := d.checkOperands("from half", operand{"h", h, HalfLen(y.Len())}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.elementwise("half_to_f32_bias", y.Len(), TensorArg(y), TensorArg(h), PtrArg(0), IntArg(y.Len()), IntArg(1), IntArg(1), IntArg(hc.bf16()))
}

// toHalfFrames converts frames [n0, n0+ns) of x, (c, p) each, into h.
func (d *Device) toHalfFrames(h *Tensor, x uintptr, ns, c, p int, hc HalfConv) error {
	if hc.NHWC {
		tiles := int64(ns) * int64((c+31)/32) * int64((p+31)/32)
		return d.launch("half_from_f32_nhwc", d.RowGrid(int(min(tiles, 1<<30))), BlockSize, TensorArg(h), PtrArg(x), IntArg(ns), IntArg(c), IntArg(p), IntArg(hc.bf16()))
	}
	return d.elementwise("half_from_f32_flat", ns*c*p, TensorArg(h), PtrArg(x), IntArg(ns*c*p), IntArg(hc.bf16()))
}

// fromHalfFrames writes ns frames of h, (c, p) each, plus bias (may be 0) as float32 to y.
func (d *Device) fromHalfFrames(y uintptr, h *Tensor, bias uintptr, ns, c, p int, hc HalfConv) error {
	if hc.NHWC {
		tiles := int64(ns) * int64((c+31)/32) * int64((p+31)/32)
		return d.launch("half_to_f32_nhwc", d.RowGrid(int(min(tiles, 1<<30))), BlockSize, PtrArg(y), TensorArg(h), PtrArg(bias), IntArg(ns), IntArg(c), IntArg(p), IntArg(hc.bf16()))
	}
	return d.elementwise("half_to_f32_bias", ns*c*p, PtrArg(y), TensorArg(h), PtrArg(bias), IntArg(ns*c*p), IntArg(c), IntArg(p), IntArg(hc.bf16()))
}

// halfGeom is the cuDNN geometry of ns frames of s on 16-bit operands.
func halfGeom(s nn.Conv2DShape, ns, dir int, hc HalfConv) convGeom {
	s.N = ns
	g := conv2dGeom(s, dir)
	g.dt, g.nhwc, g.tf32 = hc.dnnType(), hc.NHWC, true
	if hc.NHWC {
		oh, ow := s.OutH(), s.OutW()
		g.xStr = [4]int{s.C * s.H * s.W, 1, s.W * s.C, s.C}
		g.yStr = [4]int{s.K * oh * ow, 1, ow * s.K, s.K}
	}
	return g
}

// halfChunk is how many frames of s one 16-bit pass takes: chunks of equal
// size (at most one frame apart) within halfChunkValues per operand.
func halfChunk(s nn.Conv2DShape) int {
	per := max(s.C*s.H*s.W, s.K*s.OutH()*s.OutW())
	c := max(1, min(s.N, halfChunkValues/max(1, per)))
	passes := (s.N + c - 1) / c
	return (s.N + passes - 1) / passes
}

// halfConvPlan returns the cuDNN plan of g, or nil when cuDNN is off or
// declines it (the caller then widens the filter to float32).
func (d *Device) halfConvPlan(g convGeom, x, y, f uintptr) *convPlan {
	if d.dnn == nil || !d.useDNN {
		return nil
	}
	p, err := d.dnn.plan(d, g, x, y, f)
	if err != nil {
		return nil
	}
	return p
}

// widenFilter returns a float32 NCHW copy of the 16-bit filter w, for the
// fallback without cuDNN; the context must be current.
func (d *Device) widenFilter(w *Tensor, s nn.Conv2DShape, hc HalfConv) (*Tensor, error) {
	wf, err := d.scratch(s.WeightLen())
	if err != nil {
		return nil, err
	}
	khw := s.KH * s.KW
	if hc.NHWC { // (K, KH*KW, C) -> (K, C, KH*KW)
		err = d.launch("half_to_f32_nhwc", d.RowGrid(s.K*((s.C+31)/32)*((khw+31)/32)), BlockSize, TensorArg(wf), TensorArg(w), PtrArg(0), IntArg(s.K), IntArg(s.C), IntArg(khw), IntArg(hc.bf16()))
	} else {
		err = d.elementwise("half_to_f32_bias", s.WeightLen(), TensorArg(wf), TensorArg(w), PtrArg(0), IntArg(s.WeightLen()), IntArg(1), IntArg(1), IntArg(hc.bf16()))
	}
	if err != nil {
		wf.Free()
		return nil, err
	}
	return wf, nil
}

// Conv2DForwardHalf computes y = conv(x, w) + b as Conv2DForward with w
// 16-bit (HalfLen(s.WeightLen()) slots, laid out as hc says); x, y and b
// are float32 NCHW. b may be nil.
func (d *Device) Conv2DForwardHalf(y, x, w, b *Tensor, s nn.Conv2DShape, hc HalfConv) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := hc.validate(); err != nil {
		return err
	}
	in, out, wl := conv2dOperands(s)
	ops := append([]operand{{"y", y, out}, {"x", x, in}, {"w", w, HalfLen(wl)}}, optional(operand{"b", b, s.K})...)
	if err := d.checkOperands("half conv2d", ops...); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	chunk := halfChunk(s)
	oh, ow := s.OutH(), s.OutW()
	xh, yh, free, err := d.halfConvScratch(s, chunk)
	if err != nil {
		return err
	}
	defer free()
	var bias uintptr
	if b != nil {
		bias = b.Ptr()
	}
	for n0 := 0; n0 < s.N; n0 += chunk {
		ns := min(chunk, s.N-n0)
		g := halfGeom(s, ns, convFwd, hc)
		if err := d.toHalfFrames(xh, x.Ptr()+uintptr(n0*in/s.N)*4, ns, s.C, s.H*s.W, hc); err != nil {
			return err
		}
		p := d.halfConvPlan(g, xh.Ptr(), yh.Ptr(), w.Ptr())
		if p == nil {
			return d.conv2dForwardWidened(y, x, w, b, s, hc)
		}
		if err := d.dnnRun(p, g, xh.Ptr(), yh.Ptr(), w.Ptr()); err != nil {
			return err
		}
		if err := d.fromHalfFrames(y.Ptr()+uintptr(n0*out/s.N)*4, yh, bias, ns, s.K, oh*ow, hc); err != nil {
			return err
		}
	}
	return nil
}

func (d *Device) conv2dForwardWidened(y, x, w, b *Tensor, s nn.Conv2DShape, hc HalfConv) error {
	wf, err := d.widenFilter(w, s, hc)
	if err != nil {
		return err
	}
	defer wf.Free()
	return d.Conv2DForward(y, x, wf, b, s)
}

// Conv2DBackwardDataHalf computes dx from dy and the 16-bit w as
// Conv2DBackwardData (dx and dy float32 NCHW).
func (d *Device) Conv2DBackwardDataHalf(dx, dy, w *Tensor, s nn.Conv2DShape, hc HalfConv) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := hc.validate(); err != nil {
		return err
	}
	in, out, wl := conv2dOperands(s)
	if err := d.checkOperands("half conv2d backward data", operand{"dx", dx, in}, operand{"dy", dy, out}, operand{"w", w, HalfLen(wl)}); err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	chunk := halfChunk(s)
	oh, ow := s.OutH(), s.OutW()
	dxh, dyh, free, err := d.halfConvScratch(s, chunk)
	if err != nil {
		return err
	}
	defer free()
	for n0 := 0; n0 < s.N; n0 += chunk {
		ns := min(chunk, s.N-n0)
		g := halfGeom(s, ns, convBwdData, hc)
		if err := d.toHalfFrames(dyh, dy.Ptr()+uintptr(n0*out/s.N)*4, ns, s.K, oh*ow, hc); err != nil {
			return err
		}
		p := d.halfConvPlan(g, dxh.Ptr(), dyh.Ptr(), w.Ptr())
		if p == nil {
			return d.conv2dBackwardDataWidened(dx, dy, w, s, hc)
		}
		if err := d.dnnRun(p, g, dxh.Ptr(), dyh.Ptr(), w.Ptr()); err != nil {
			return err
		}
		if err := d.fromHalfFrames(dx.Ptr()+uintptr(n0*in/s.N)*4, dxh, 0, ns, s.C, s.H*s.W, hc); err != nil {
			return err
		}
	}
	return nil
}

func (d *Device) conv2dBackwardDataWidened(dx, dy, w *Tensor, s nn.Conv2DShape, hc HalfConv) error {
	wf, err := d.widenFilter(w, s, hc)
	if err != nil {
		return err
	}
	defer wf.Free()
	return d.Conv2DBackwardData(dx, dy, wf, s)
}

// halfConvScratch allocates the 16-bit copies of one chunk of frames of a
// convolution's input and output (chunk images of s); free releases both.
func (d *Device) halfConvScratch(s nn.Conv2DShape, chunk int) (xh, yh *Tensor, free func(), err error) {
	if xh, err = d.scratch(HalfLen(chunk * s.C * s.H * s.W)); err != nil {
		return nil, nil, nil, err
	}
	if yh, err = d.scratch(HalfLen(chunk * s.K * s.OutH() * s.OutW())); err != nil {
		xh.Free()
		return nil, nil, nil, err
	}
	return xh, yh, func() { xh.Free(); yh.Free() }, nil
}
