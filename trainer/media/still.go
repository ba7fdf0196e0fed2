package media

import (
	"fmt"
	"image"

	"github.com/disintegration/imaging"
)

// LoadStill opens an image file (JPEG, PNG, GIF, TIFF or BMP, any size),
// centre-crops it to a square and resizes it to res x res (Lanczos). It
// returns the (3,res,res) float32 pixels in [-1,1].
func LoadStill(path string, res int) ([]float32, error) {
	img, err := imaging.Open(path, imaging.AutoOrientation(true))
	if err != nil {
		return nil, fmt.Errorf("still image %s: %w", path, err)
	}
	return ToCHW(Fit(img, res)), nil
}

// Fit centre-crops img to a square and resizes it to res x res.
func Fit(img image.Image, res int) *image.NRGBA {
	return imaging.Fill(img, res, res, imaging.Center, imaging.Lanczos)
}
