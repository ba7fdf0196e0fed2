package frames

import (
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// phoneStyle writes what a phone records in portrait: the frames of in
// stored turned 90° clockwise (lossless), with a display rotation that turns
// them back for viewing.
func phoneStyle(t *testing.T, in, out string) {
	t.Helper()
	sideways := out + ".sideways.mp4"
	for _, args := range [][]string{
		{"-i", in, "-vf", "transpose=1", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", sideways},
		{"-i", sideways, "-c", "copy", "-metadata:s:v:0", "rotate=90", out},
	} {
		cmd := exec.Command("ffmpeg", append([]string{"-nostdin", "-v", "error", "-y"}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
		}
	}
}

// A video stored sideways with a display rotation (as phones record) comes
// out upright: its frames match those of the same scene stored upright, sky
// at the top.
func TestRotatedComesOutUpright(t *testing.T) {
	vdir := fixtures(t)
	dir := t.TempDir()
	upright := filepath.Join(vdir, "landscape.mp4")
	phone := filepath.Join(dir, "phone.mp4")
	phoneStyle(t, upright, phone)

	var ids [2]string
	for i, path := range []string{upright, phone} {
		src := sourceOf(t, path)
		src.ID = fmt.Sprint(i)
		ids[i] = src.ID
		if _, err := Extract(context.Background(), src, DefaultParams(), filepath.Join(dir, src.ID)); err != nil {
			t.Fatal(err)
		}
	}
	a, b := decodeLuma(t, FramePath(dir, ids[0], 1)), decodeLuma(t, FramePath(dir, ids[1], 1))
	diff := 0.0
	for i := range a.Y {
		diff += abs(float64(a.Y[i]) - float64(b.Y[i]))
	}
	diff /= float64(len(a.Y))
	top, bottom, left, right := quarterMeans(b)
	t.Logf("mean |difference| to the upright video's frame: %.2f; top %.0f bottom %.0f left %.0f right %.0f", diff, top, bottom, left, right)
	if diff > 4 {
		t.Errorf("the rotated video's frame differs from the upright one's by %.1f per pixel: not turned upright", diff)
	}
	if abs(top-bottom) < 2*abs(left-right) {
		t.Errorf("sky is not at the top (top %.0f bottom %.0f left %.0f right %.0f)", top, bottom, left, right)
	}
}

func decodeLuma(t *testing.T, path string) *image.YCbCr {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := jpeg.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	yc, ok := img.(*image.YCbCr)
	if !ok || yc.Bounds().Dx() != 512 || yc.Bounds().Dy() != 512 {
		t.Fatalf("%s: %T %v, want 512x512 YCbCr", path, img, img.Bounds())
	}
	return yc
}

// quarterMeans returns the mean luma of the top, bottom, left and right
// quarters of an image.
func quarterMeans(yc *image.YCbCr) (top, bottom, left, right float64) {
	b := yc.Bounds()
	w, h := b.Dx(), b.Dy()
	var sum [4]float64
	var n [4]int
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := float64(yc.Y[yc.YOffset(x, y)])
			for i, in := range []bool{y < h/4, y >= h-h/4, x < w/4, x >= w-w/4} {
				if in {
					sum[i] += v
					n[i]++
				}
			}
		}
	}
	return sum[0] / float64(n[0]), sum[1] / float64(n[1]), sum[2] / float64(n[2]), sum[3] / float64(n[3])
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
