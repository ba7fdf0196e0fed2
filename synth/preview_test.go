package synth

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"testing"
)

func TestPreview(t *testing.T) {
	dir := os.Getenv("SYNTH_PREVIEW")
	if dir == "" {
		t.Skip("set SYNTH_PREVIEW=dir to write preview PNGs")
	}
	const W, H = 320, 180
	sheet := image.NewRGBA(image.Rect(0, 0, 3*W, 6*H))
	for seed := int64(0); seed < 6; seed++ {
		sp := Spec{Width: W, Height: H, Seed: seed}.WithDefaults()
		sc := newScene(sp)
		for k, tt := range []float64{0, 4, 8} {
			buf := make([]byte, W*H*3)
			sc.renderFrame(buf, frameParams{t: tt, progress: tt / 8}, 0)
			for y := 0; y < H; y++ {
				for x := 0; x < W; x++ {
					o := sheet.PixOffset(k*W+x, int(seed)*H+y)
					copy(sheet.Pix[o:], buf[3*(y*W+x):3*(y*W+x)+3])
					sheet.Pix[o+3] = 255
				}
			}
		}
	}
	f, err := os.Create(fmt.Sprintf("%s/sheet.png", dir))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, sheet); err != nil {
		t.Fatal(err)
	}
}
