package shards

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"testing"

	"github.com/disintegration/imaging"
)

// The YCbCr fast path agrees with converting to RGB first and box-averaging
// (imaging: centre crop, then resize with a box filter), within rounding, for every chroma
// subsampling, odd crops and non-square images.
func TestToTensorFastPathMatchesImaging(t *testing.T) {
	// Width 98: the centre square starts at x=17, not aligned to chroma.
	for _, width := range []int{96, 98} {
		testFastPath(t, width)
	}
	if ycbcrBox(make([]float32, 3*48*48), image.NewYCbCr(image.Rect(0, 0, 64, 64), image.YCbCrSubsampleRatio420), 48) {
		t.Error("fast path taken for a non-integer factor")
	}
}

func testFastPath(t *testing.T, width int) {
	src := image.NewNRGBA(image.Rect(0, 0, width, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < width; x++ {
			i := src.PixOffset(x, y)
			src.Pix[i], src.Pix[i+1], src.Pix[i+2], src.Pix[i+3] = uint8(x*2), uint8(y*3), uint8((x*y)%256), 255
		}
	}
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440} {
		m := image.NewYCbCr(src.Bounds(), ratio)
		for y := 0; y < 64; y++ {
			for x := 0; x < width; x++ {
				c := src.NRGBAAt(x, y)
				yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
				m.Y[m.YOffset(x, y)] = yy
				ci := m.COffset(x, y)
				m.Cb[ci], m.Cr[ci] = cb, cr
			}
		}
		for _, res := range []int{64, 32, 16, 8} {
			t.Run(fmt.Sprintf("w%d/%v/%d", width, ratio, res), func(t *testing.T) {
				fast := make([]float32, 3*res*res)
				if !ycbcrBox(fast, m, res) {
					t.Fatal("fast path not taken")
				}
				ref := make([]float32, 3*res*res)
				n := imaging.Resize(imaging.CropCenter(m, 64, 64), res, res, imaging.Box)
				for c := 0; c < 3; c++ {
					for i := 0; i < res*res; i++ {
						ref[c*res*res+i] = float32(n.Pix[4*i+c])/127.5 - 1
					}
				}
				worst := 0.0
				for i := range fast {
					worst = math.Max(worst, math.Abs(float64(fast[i]-ref[i])))
				}
				// Chroma is averaged at its own resolution, so edges of
				// subsampled blocks may differ by a few levels.
				if worst > 6/127.5 {
					t.Errorf("max difference %.4f (%.1f levels)", worst, worst*127.5)
				}
			})
		}
	}
}

func TestToTensorRealJPEG(t *testing.T) {
	data := makeFrame(t, 1, 2, 64)
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.YCbCr); !ok {
		t.Fatalf("decoded %T", img)
	}
	for _, res := range []int{64, 16, 48} { // 48: the imaging fallback
		out := make([]float32, 3*res*res)
		ToTensor(out, img, res)
		lo, hi := float32(1), float32(-1)
		for _, v := range out {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo < -1 || hi > 1 || hi-lo < 0.5 {
			t.Errorf("res %d: values in [%v, %v]", res, lo, hi)
		}
	}
}
