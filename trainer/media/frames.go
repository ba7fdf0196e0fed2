package media

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// Frames converts a float32 tensor of t frames, each (3,h,w) channel-first in
// [-1,1], to RGBA images. Values outside [-1,1] are clamped.
func Frames(data []float32, t, h, w int) ([]*image.RGBA, error) {
	if t <= 0 || h <= 0 || w <= 0 || len(data) != t*3*h*w {
		return nil, fmt.Errorf("media: %d values do not form %d frames of 3x%dx%d", len(data), t, h, w)
	}
	out := make([]*image.RGBA, t)
	plane := h * w
	for f := range t {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		base := data[f*3*plane:]
		for i := range plane {
			img.Pix[4*i] = toByte(base[i])
			img.Pix[4*i+1] = toByte(base[plane+i])
			img.Pix[4*i+2] = toByte(base[2*plane+i])
			img.Pix[4*i+3] = 255
		}
		out[f] = img
	}
	return out, nil
}

func toByte(v float32) uint8 {
	x := (float64(v) + 1) * 127.5
	if math.IsNaN(x) || x < 0 {
		return 0
	}
	if x > 255 {
		return 255
	}
	return uint8(math.Round(x))
}

// ToCHW converts an image to a (3,h,w) float32 slice in [-1,1].
func ToCHW(img image.Image) []float32 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]float32, 3*w*h)
	for y := range h {
		for x := range w {
			c := color.RGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
			i := y*w + x
			out[i] = float32(c.R)/127.5 - 1
			out[w*h+i] = float32(c.G)/127.5 - 1
			out[2*w*h+i] = float32(c.B)/127.5 - 1
		}
	}
	return out
}

// Upscale returns img enlarged by an integer factor with nearest-neighbour
// sampling (crisp pixels for tiny training resolutions). Factor 1 returns img.
func Upscale(img *image.RGBA, factor int) *image.RGBA {
	if factor <= 1 {
		return img
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()*factor, b.Dy()*factor))
	for y := range out.Rect.Dy() {
		for x := range out.Rect.Dx() {
			si := img.PixOffset(b.Min.X+x/factor, b.Min.Y+y/factor)
			di := out.PixOffset(x, y)
			copy(out.Pix[di:di+4], img.Pix[si:si+4])
		}
	}
	return out
}
