//go:build gpu

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// fusedSourceRef is the convolution input the fused op builds from x: the
// CPU silu(groupnorm(x)) (statistics in float64) when gamma is set, then
// the upsample or end padding of src.
func fusedSourceRef(x, gamma, beta []float32, groups int, eps float64, s nn.Conv2DShape, src HalfSource) []float32 {
	ih, iw, err := src.sourceHW(s)
	if err != nil {
		panic(err)
	}
	ip := ih * iw
	h := append([]float32(nil), x...)
	if gamma != nil {
		cg := s.C / groups
		for n := 0; n < s.N; n++ {
			for g := 0; g < groups; g++ {
				off, m := (n*s.C+g*cg)*ip, cg*ip
				var sum, sq float64
				for _, v := range x[off : off+m] {
					sum += float64(v)
				}
				mean := sum / float64(m)
				for _, v := range x[off : off+m] {
					sq += (float64(v) - mean) * (float64(v) - mean)
				}
				rstd := 1 / math.Sqrt(sq/float64(m)+eps)
				for i := 0; i < m; i++ {
					ch := g*cg + i/ip
					v := (float64(x[off+i])-mean)*rstd*float64(gamma[ch]) + float64(beta[ch])
					h[off+i] = float32(v / (1 + math.Exp(-v)))
				}
			}
		}
	}
	out := make([]float32, s.InLen())
	for nc := 0; nc < s.N*s.C; nc++ {
		for y := 0; y < s.H; y++ {
			for xx := 0; xx < s.W; xx++ {
				var v float32
				switch src {
				case SourceSame:
					v = h[nc*ip+y*iw+xx]
				case SourceUpsample:
					v = h[nc*ip+(y/2)*iw+xx/2]
				case SourcePadEnd:
					if y < ih && xx < iw {
						v = h[nc*ip+y*iw+xx]
					}
				}
				out[(nc*s.H+y)*s.W+xx] = v
			}
		}
	}
	return out
}

// TestOpConv2DHalfFused checks the fused 16-bit convolution against the
// float32 CPU composition (group norm, SiLU, upsample or padding, conv,
// bias, residual) in chunks of frames, with the residual or the source
// being the output itself; tolerance 4u as TestOpConv2DHalf.
func TestOpConv2DHalfFused(t *testing.T) {
	cases := []struct {
		name     string
		s        nn.Conv2DShape
		src      HalfSource
		gn, res  bool
		inPlaceX bool // x is y (source frame = output frame)
		inPlaceR bool // the residual is y
	}{
		{"gn-silu", nn.Conv2DShape{N: 3, C: 64, H: 16, W: 16, K: 32, KH: 3, KW: 3, Stride: 1, Pad: 1}, SourceSame, true, false, false, false},
		{"gn-silu-residual", nn.Conv2DShape{N: 3, C: 64, H: 16, W: 16, K: 32, KH: 3, KW: 3, Stride: 1, Pad: 1}, SourceSame, true, true, false, false},
		{"gn-silu-in-place", nn.Conv2DShape{N: 3, C: 64, H: 16, W: 16, K: 64, KH: 3, KW: 3, Stride: 1, Pad: 1}, SourceSame, true, false, true, false},
		{"gn-silu-residual-in-place", nn.Conv2DShape{N: 3, C: 32, H: 16, W: 16, K: 64, KH: 3, KW: 3, Stride: 1, Pad: 1}, SourceSame, true, true, false, true},
		{"shortcut-residual-in-place", nn.Conv2DShape{N: 3, C: 64, H: 16, W: 16, K: 32, KH: 1, KW: 1, Stride: 1, Pad: 0}, SourceSame, false, true, false, true},
		{"upsample", nn.Conv2DShape{N: 3, C: 32, H: 16, W: 16, K: 32, KH: 3, KW: 3, Stride: 1, Pad: 1}, SourceUpsample, false, false, false, false},
		{"pad-end", nn.Conv2DShape{N: 2, C: 32, H: 16, W: 16, K: 32, KH: 3, KW: 3, Stride: 2, Pad: 0}, SourcePadEnd, false, false, false, false},
	}
	old := halfChunkValues
	halfChunkValues = 2 * 64 * 16 * 16 // 3 frames go in chunks of 2 + 1
	defer func() { halfChunkValues = old }()
	d := device(t)
	for _, ht := range halfTypes {
		for i, c := range cases {
			t.Run(fmt.Sprintf("%s/%s", ht.name, c.name), func(t *testing.T) {
				s := c.s
				ih, iw, err := c.src.sourceHW(s)
				must(t, err)
				rng := rand.New(rand.NewPCG(uint64(i), 7))
				x := randn(rng, s.N*s.C*ih*iw)
				for j := range x {
					x[j] = 3*x[j] + 1.5 // a mean and scale the norm removes
				}
				w, b := randn(rng, s.WeightLen()), randn(rng, s.K)
				var gamma, beta []float32
				f := HalfConvFused{Source: c.src, Groups: 32, Eps: 1e-6}
				if c.gn {
					gamma, beta = randn(rng, s.C), randn(rng, s.C)
				}
				want := make([]float32, s.OutLen())
				nn.Conv2DForward(want, fusedSourceRef(x, gamma, beta, 32, 1e-6, s, c.src), w, b, s)
				var r []float32
				if c.res {
					r = randn(rng, s.OutLen())
					for j := range want {
						want[j] += r[j]
					}
				}
				gw := halfUpload(t, d, filterNHWC(w, s), ht.t)
				gx, gb := upload(t, d, x), upload(t, d, b)
				defer freeAll(gw, gx, gb)
				if c.gn {
					f.Gamma, f.Beta = upload(t, d, gamma), upload(t, d, beta)
					defer freeAll(f.Gamma, f.Beta)
				}
				var gy *Tensor
				switch {
				case c.inPlaceX:
					gy = gx
				case c.inPlaceR:
					gy = upload(t, d, r)
					f.Residual = gy
					defer gy.Free()
				default:
					gy = poisoned(t, d, s.OutLen())
					defer gy.Free()
					if c.res {
						f.Residual = upload(t, d, r)
						defer f.Residual.Free()
					}
				}
				err = d.Conv2DForwardHalfFused(gy, gx, gw, gb, s, HalfConv{Type: ht.t, NHWC: true}, f)
				if err == ErrHalfConvDeclined {
					t.Skip("no cuDNN plan")
				}
				must(t, err)
				check(t, "y", gy, want, 4*ht.u)
			})
		}
	}
}
