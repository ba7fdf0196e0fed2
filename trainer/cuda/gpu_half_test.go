//go:build gpu

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// halfTypes are the 16-bit types with their unit roundoff u (2^-11 for
// float16's 11 significant bits, 2^-8 for bfloat16's 8) and the tolerance
// of a half convolution against the float32 one: x and w are each rounded
// (relative error up to u), products accumulate in float32, the output is
// rounded once more; on random operands the errors are independent and the
// relative L2 error comes to about u, so 4u bounds it (fp16 2e-3, bf16 1.6e-2).
var halfTypes = []struct {
	name string
	t    DataType
	u    float64
}{{"fp16", TypeF16, 1.0 / 2048}, {"bf16", TypeBF16, 1.0 / 256}}

// halfUpload uploads x rounded to t.
func halfUpload(t *testing.T, d *Device, x []float32, typ DataType) *Tensor {
	t.Helper()
	f := upload(t, d, x)
	defer f.Free()
	h, err := d.NewHalf(len(x))
	must(t, err)
	must(t, d.ToHalf(h, f, typ))
	return h
}

// filterNHWC is w (K, C, KH, KW) as (K, KH, KW, C).
func filterNHWC(w []float32, s nn.Conv2DShape) []float32 {
	out := make([]float32, len(w))
	khw := s.KH * s.KW
	for k := 0; k < s.K; k++ {
		for c := 0; c < s.C; c++ {
			for j := 0; j < khw; j++ {
				out[(k*khw+j)*s.C+c] = w[(k*s.C+c)*khw+j]
			}
		}
	}
	return out
}

func TestHalfRoundTrip(t *testing.T) {
	d := device(t)
	rng := rand.New(rand.NewPCG(9, 9))
	x := randn(rng, 1001)
	x = append(x, 70000, -1e-9, 0)
	for _, ht := range halfTypes {
		t.Run(ht.name, func(t *testing.T) {
			h := halfUpload(t, d, x, ht.t)
			y := poisoned(t, d, len(x))
			defer freeAll(h, y)
			must(t, d.FromHalf(y, h, ht.t))
			got, err := y.ToHost()
			must(t, err)
			for i, v := range x {
				g := float64(got[i])
				switch {
				case v == 70000 && ht.t == TypeF16:
					if !math.IsInf(g, 1) {
						t.Errorf("70000 in float16: %v, want +Inf", g)
					}
				case math.Abs(float64(v)) < 1e-8:
					if math.Abs(g) > 1e-8 {
						t.Errorf("%v -> %v", v, g)
					}
				case math.Abs(g-float64(v)) > ht.u*math.Abs(float64(v))+0x1p-25: // + half of float16's subnormal spacing
					t.Fatalf("x[%d] = %v -> %v: more than u = %.3g relative", i, v, g, ht.u)
				}
			}
		})
	}
}

// The 16-bit convolutions (forward and backward data) against the float32
// CPU reference, per shape, type and layout, through cuDNN and through the
// widened-filter fallback; chunks of frames smaller than the batch.
func TestOpConv2DHalf(t *testing.T) {
	shapes := []nn.Conv2DShape{
		{N: 2, C: 3, H: 9, W: 7, K: 5, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 3, C: 8, H: 16, W: 16, K: 16, KH: 3, KW: 3, Stride: 2, Pad: 1},
		{N: 4, C: 16, H: 8, W: 8, K: 8, KH: 1, KW: 1, Stride: 1, Pad: 0},
		{N: 3, C: 64, H: 32, W: 32, K: 32, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 2, C: 128, H: 17, W: 17, K: 128, KH: 3, KW: 3, Stride: 2, Pad: 0},
	}
	old := halfChunkValues
	halfChunkValues = 2 * 64 * 32 * 32 // shape 3 goes in chunks of 2 + 1 frames
	defer func() { halfChunkValues = old }()
	convBackends(t, false, func(t *testing.T) {
		d := device(t)
		for _, ht := range halfTypes {
			for _, nhwc := range []bool{false, true} {
				hc := HalfConv{Type: ht.t, NHWC: nhwc}
				tol := 4 * ht.u
				for i, s := range shapes {
					t.Run(fmt.Sprintf("%s/nhwc=%v/%d", ht.name, nhwc, i), func(t *testing.T) {
						rng := rand.New(rand.NewPCG(uint64(i), 2))
						x, w, b := randn(rng, s.InLen()), randn(rng, s.WeightLen()), randn(rng, s.K)
						dy := randn(rng, s.OutLen())
						y := make([]float32, s.OutLen())
						nn.Conv2DForward(y, x, w, b, s)
						dx := make([]float32, s.InLen())
						nn.Conv2DBackwardData(dx, dy, w, s)
						wl := w
						if nhwc {
							wl = filterNHWC(w, s)
						}
						gw := halfUpload(t, d, wl, ht.t)
						gx, gb, gdy := upload(t, d, x), upload(t, d, b), upload(t, d, dy)
						gy, gdx := poisoned(t, d, s.OutLen()), poisoned(t, d, s.InLen())
						defer freeAll(gx, gw, gb, gdy, gy, gdx)
						must(t, d.Conv2DForwardHalf(gy, gx, gw, gb, s, hc))
						check(t, "y", gy, y, tol)
						must(t, d.Conv2DBackwardDataHalf(gdx, gdy, gw, s, hc))
						check(t, "dx", gdx, dx, tol)
					})
				}
			}
		}
	})
}

// TestHalfConvSpeed times the SD VAE's largest convolution (128 -> 128
// channels, 3x3, 512x512) forward and backward data in float32/TF32 and in
// each 16-bit type and layout, and lists the cuDNN plans
// (PIPELINE_HALF_CONV_BENCH=1).
func TestHalfConvSpeed(t *testing.T) {
	if os.Getenv("PIPELINE_HALF_CONV_BENCH") != "1" {
		t.Skip("PIPELINE_HALF_CONV_BENCH=1 times the half convolutions")
	}
	d := device(t)
	must(t, d.setTF32(true))
	defer d.setTF32(false)
	for _, s := range []nn.Conv2DShape{
		{N: 8, C: 128, H: 512, W: 512, K: 128, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 2, C: 128, H: 512, W: 512, K: 128, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{N: 25, C: 320, H: 64, W: 64, K: 320, KH: 3, KW: 3, Stride: 1, Pad: 1},
	} {
		rng := rand.New(rand.NewPCG(1, 1))
		x, w := upload(t, d, randn(rng, s.InLen())), upload(t, d, randn(rng, s.WeightLen()))
		y, dx := poisoned(t, d, s.OutLen()), poisoned(t, d, s.InLen())
		tflop := 2 * float64(s.OutLen()) * float64(s.C*s.KH*s.KW) / 1e12
		timeIt := func(name string, f func() error) {
			must(t, f())
			must(t, d.Sync())
			st := time.Now()
			const reps = 5
			for i := 0; i < reps; i++ {
				must(t, f())
			}
			must(t, d.Sync())
			ms := float64(time.Since(st).Microseconds()) / 1000 / reps
			t.Logf("| %dx%dx%dx%d k%d | %s | %.2f ms | %.0f TFLOP/s |", s.N, s.C, s.H, s.W, s.K, name, ms, tflop/(ms/1e3))
		}
		timeIt("tf32 fwd", func() error { return d.Conv2DForward(y, x, w, nil, s) })
		timeIt("tf32 bwd data", func() error { return d.Conv2DBackwardData(dx, y, w, s) })
		for _, ht := range halfTypes {
			for _, nhwc := range []bool{false, true} {
				hc := HalfConv{Type: ht.t, NHWC: nhwc}
				wh, err := d.NewHalf(s.WeightLen())
				must(t, err)
				must(t, d.ToHalf(wh, w, ht.t))
				timeIt(fmt.Sprintf("%s nhwc=%v fwd", ht.name, nhwc), func() error { return d.Conv2DForwardHalf(y, x, wh, nil, s, hc) })
				timeIt(fmt.Sprintf("%s nhwc=%v bwd data", ht.name, nhwc), func() error { return d.Conv2DBackwardDataHalf(dx, y, wh, s, hc) })
				wh.Free()
			}
		}
		freeAll(x, w, y, dx)
	}
	for _, p := range d.convPlans() {
		t.Log(p)
	}
}
