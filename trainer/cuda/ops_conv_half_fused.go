package cuda

import (
	"errors"
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Fused half-precision convolutions, for inference: the 16-bit NHWC input
// of each chunk is built straight from the float32 source by one kernel
// (kernels/half_fused.cu), optionally as silu(groupnorm(x)), a nearest 2x
// upsample of x or x with SD's zero row and column at the end, so none of
// those float32 intermediates is written; the output gets bias and a
// residual added in the same pass that widens it. No backward pass.

// HalfSource is the layout of a fused convolution's float32 source.
type HalfSource int

const (
	// SourceSame: the source is the convolution's (N, C, H, W) input.
	SourceSame HalfSource = iota
	// SourceUpsample: the source is (N, C, H/2, W/2), upsampled 2x (nearest).
	SourceUpsample
	// SourcePadEnd: the source is (N, C, H-1, W-1) with a zero row and
	// column added at the end (SD's asymmetric downsampling padding).
	SourcePadEnd
)

// HalfConvFused says what a fused convolution does around the product.
type HalfConvFused struct {
	// Gamma and Beta (C values each), when set: the source values first
	// become silu(groupnorm(x)) over Groups groups with Eps, statistics
	// over the whole source taken before any output is written.
	Gamma, Beta *Tensor
	Groups      int
	Eps         float32
	Source      HalfSource
	// Residual (the output's length), when set, is added to the output;
	// it may be y itself.
	Residual *Tensor
}

// ErrHalfConvDeclined: cuDNN is off or has no 16-bit plan for the
// geometry; nothing was written (the caller runs the unfused layers).
var ErrHalfConvDeclined = errors.New("cuda: no 16-bit cuDNN plan for the fused convolution")

// sourceHW is the source frame size of s under src.
func (src HalfSource) sourceHW(s nn.Conv2DShape) (int, int, error) {
	switch src {
	case SourceSame:
		return s.H, s.W, nil
	case SourceUpsample:
		if s.H%2 != 0 || s.W%2 != 0 {
			return 0, 0, fmt.Errorf("cuda: fused half conv: upsampled input %dx%d is not even", s.H, s.W)
		}
		return s.H / 2, s.W / 2, nil
	case SourcePadEnd:
		if s.H < 2 || s.W < 2 {
			return 0, 0, fmt.Errorf("cuda: fused half conv: padded input %dx%d too small", s.H, s.W)
		}
		return s.H - 1, s.W - 1, nil
	}
	return 0, 0, fmt.Errorf("cuda: fused half conv: source layout %d", src)
}

// Conv2DForwardHalfFused computes y = conv(in(x), w) + b + f.Residual with
// w 16-bit (K, KH, KW, C) (hc.NHWC required), where in(x) is the source
// transformed as f says; x, y, b and the residual are float32 NCHW. x may
// be y when a source frame has the output frame's length (each chunk is
// converted before its output is written). ErrHalfConvDeclined when cuDNN
// gives no plan.
func (d *Device) Conv2DForwardHalfFused(y, x, w, b *Tensor, s nn.Conv2DShape, hc HalfConv, f HalfConvFused) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := hc.validate(); err != nil {
		return err
	}
	if !hc.NHWC {
		return fmt.Errorf("cuda: fused half conv needs NHWC operands")
	}
	ih, iw, err := f.Source.sourceHW(s)
	if err != nil {
		return err
	}
	_, out, wl := conv2dOperands(s)
	in := s.N * s.C * ih * iw
	ops := append([]operand{{"y", y, out}, {"x", x, in}, {"w", w, HalfLen(wl)}},
		optional(operand{"b", b, s.K}, operand{"residual", f.Residual, out})...)
	gs := nn.GroupNormShape{N: s.N, C: s.C, P: ih * iw, Groups: f.Groups, Eps: f.Eps}
	if f.Gamma != nil || f.Beta != nil {
		if err := gs.Validate(); err != nil {
			return err
		}
		ops = append(ops, operand{"gamma", f.Gamma, s.C}, operand{"beta", f.Beta, s.C})
	}
	if err := d.checkOperands("fused half conv2d", ops...); err != nil {
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
	plans := map[int]*convPlan{}
	for _, ns := range []int{chunk, s.N - (s.N-1)/chunk*chunk} {
		if plans[ns] == nil {
			if plans[ns] = d.halfConvPlan(halfGeom(s, ns, convFwd, hc), xh.Ptr(), yh.Ptr(), w.Ptr()); plans[ns] == nil {
				return ErrHalfConvDeclined
			}
		}
	}
	var gamma, beta, mean, rstd uintptr
	if f.Gamma != nil {
		st, err := d.scratchStats(gs)
		if err != nil {
			return err
		}
		defer st.Free()
		if err := d.gnStatsOnePassLocked(st, x, gs); err != nil {
			return err
		}
		gamma, beta, mean, rstd = f.Gamma.Ptr(), f.Beta.Ptr(), st.Mean.Ptr(), st.Rstd.Ptr()
	}
	var bias, res uintptr
	if b != nil {
		bias = b.Ptr()
	}
	for n0 := 0; n0 < s.N; n0 += chunk {
		ns := min(chunk, s.N-n0)
		tiles := int64(ns) * int64((s.C+31)/32) * int64((s.H*s.W+31)/32)
		if err := d.launch("half_conv_in_nhwc", d.RowGrid(int(min(tiles, 1<<30))), BlockSize, TensorArg(xh), PtrArg(x.Ptr()+uintptr(n0*(in/s.N))*4),
			IntArg(ns), IntArg(s.C), IntArg(s.H), IntArg(s.W), IntArg(ih), IntArg(iw), IntArg(int(f.Source)),
			PtrArg(gamma), PtrArg(beta), PtrArg(mean), PtrArg(rstd), IntArg(n0), IntArg(max(1, f.Groups)), IntArg(hc.bf16())); err != nil {
			return err
		}
		g := halfGeom(s, ns, convFwd, hc)
		if err := d.dnnRun(plans[ns], g, xh.Ptr(), yh.Ptr(), w.Ptr()); err != nil {
			return err
		}
		off := uintptr(n0*(out/s.N)) * 4
		if f.Residual != nil {
			res = f.Residual.Ptr() + off
		}
		tiles = int64(ns) * int64((s.K+31)/32) * int64((oh*ow+31)/32)
		if err := d.launch("half_to_f32_nhwc_res", d.RowGrid(int(min(tiles, 1<<30))), BlockSize, PtrArg(y.Ptr()+off), TensorArg(yh),
			PtrArg(bias), PtrArg(res), IntArg(ns), IntArg(s.K), IntArg(oh*ow), IntArg(hc.bf16())); err != nil {
			return err
		}
	}
	return nil
}

// gnStatsOnePassLocked is gnStatsLocked in one pass over x (gnh_stats_part).
func (d *Device) gnStatsOnePassLocked(st *GroupNormStats, x *Tensor, s nn.GroupNormShape) error {
	groups := s.N * s.Groups
	splits := gnSplits(s, d.sms)
	part, err := d.scratch(2 * 3 * groups * splits) // doubles
	if err != nil {
		return err
	}
	defer part.Free()
	if err := d.perRow("gnh_stats_part", groups*splits, TensorArg(part), TensorArg(x), IntArg(s.N), IntArg(s.C), IntArg(s.P),
		IntArg(s.Groups), IntArg(splits)); err != nil {
		return err
	}
	return d.elementwise("gn_stats_merge", groups, TensorArg(st.Mean), TensorArg(st.Rstd), TensorArg(part), IntArg(groups), IntArg(splits), F32Arg(s.Eps))
}
