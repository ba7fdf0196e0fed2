package media

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// gradient makes t frames of a moving colour ramp as a (T,3,H,W) tensor.
func gradient(t, h, w int) []float32 {
	data := make([]float32, t*3*h*w)
	for f := range t {
		for y := range h {
			for x := range w {
				i := f*3*h*w + y*w + x
				data[i] = float32(x+f)/float32(w+t)*2 - 1
				data[i+h*w] = float32(y)/float32(h)*2 - 1
				data[i+2*h*w] = 0.5
			}
		}
	}
	return data
}

func TestFramesRoundTrip(t *testing.T) {
	data := gradient(2, 4, 5)
	frames, err := Frames(data, 2, 4, 5)
	if err != nil {
		t.Fatal(err)
	}
	back := ToCHW(frames[1])
	for i, v := range back {
		if d := v - data[3*4*5+i]; d > 1.0/127 || d < -1.0/127 {
			t.Fatalf("value %d: %v after round trip, want %v", i, v, data[3*4*5+i])
		}
	}
	if _, err := Frames(data, 3, 4, 5); err == nil {
		t.Error("Frames accepted a wrong frame count")
	}
	clamp, _ := Frames([]float32{-3, 0, 3}, 1, 1, 1)
	if c := clamp[0].RGBAAt(0, 0); c.R != 0 || c.G != 128 || c.B != 255 {
		t.Errorf("clamped colour %v", c)
	}
}

func TestWriteGIF(t *testing.T) {
	// 6 frames of 8x8 hold at most 256 distinct colours, so the palette
	// reproduces every pixel exactly.
	frames, _ := Frames(gradient(6, 8, 8), 6, 8, 8)
	path := filepath.Join(t.TempDir(), "a.gif")
	if err := WriteGIF(path, frames, Options{FPS: 10, Scale: 3}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	g, err := gif.DecodeAll(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 6 || g.Config.Width != 24 || g.Delay[0] != 10 {
		t.Fatalf("gif: %d frames, width %d, delay %d; want 6, 24, 10", len(g.Image), g.Config.Width, g.Delay[0])
	}
	// The global palette reproduces each pixel.
	for f, img := range g.Image {
		for y := 0; y < 24; y += 3 {
			for x := 0; x < 24; x += 3 {
				want := frames[f].RGBAAt(x/3, y/3)
				got := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
				if got != want {
					t.Fatalf("frame %d (%d,%d): %v, want %v", f, x, y, got, want)
				}
			}
		}
	}
}

func TestGIFPaletteApproximatesManyColours(t *testing.T) {
	frames, _ := Frames(gradient(30, 32, 32), 30, 32, 32)
	pal := medianCut(frames, 256)
	q := newQuantizer(pal)
	worst := 0
	for _, f := range frames {
		p := q.paletted(f)
		for i := 0; i < len(f.Pix); i += 4 {
			c := pal[p.Pix[i/4]].(color.RGBA)
			worst = max(worst, absDiff(c.R, f.Pix[i]), absDiff(c.G, f.Pix[i+1]), absDiff(c.B, f.Pix[i+2]))
		}
	}
	if worst > 16 {
		t.Errorf("worst channel error %d with a 256-colour palette over a 2-channel ramp", worst)
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestWriteMP4FrameCount(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	const n = 120
	frames, _ := Frames(gradient(n, 9, 11), n, 9, 11)
	path := filepath.Join(t.TempDir(), "a.mp4")
	if err := WriteMP4(context.Background(), path, frames, Options{FPS: 12, Scale: 2}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames,width,height,codec_name,pix_fmt", "-of", "default=nw=1", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"codec_name=h264", "width=22", "height=18", "pix_fmt=yuv420p", "nb_read_frames=" + strconv.Itoa(n)} {
		if !strings.Contains(s, want) {
			t.Errorf("ffprobe output lacks %s:\n%s", want, s)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files left beside the mp4, want none", len(entries)-1)
	}
}

func TestWriteMP4CancelledContext(t *testing.T) {
	frames, _ := Frames(gradient(2, 4, 4), 2, 4, 4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	path := filepath.Join(t.TempDir(), "a.mp4")
	if err := WriteMP4(ctx, path, frames, Options{}); err == nil {
		t.Error("WriteMP4 succeeded on a cancelled context")
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a cancelled encode left an mp4")
	}
}

func TestContactSheet(t *testing.T) {
	frames, _ := Frames(gradient(5, 4, 6), 5, 4, 6)
	path := filepath.Join(t.TempDir(), "sheet.png")
	if err := WriteContactSheet(path, frames, 0, 2); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 5 frames -> 3 columns x 2 rows of 12x8 with 2-pixel gaps.
	if got, want := img.Bounds().Size(), image.Pt(3*14+2, 2*10+2); got != want {
		t.Errorf("sheet size %v, want %v", got, want)
	}
	// Frame 4 (row 1, column 1) top-left pixel.
	want := frames[4].RGBAAt(0, 0)
	if got := color.RGBAModel.Convert(img.At(2+14, 2+10)).(color.RGBA); got != want {
		t.Errorf("frame 4 pixel %v, want %v", got, want)
	}
}

func TestLoadStillCropsAndResizes(t *testing.T) {
	// A 40x20 image: left quarter red, middle half green, right quarter blue.
	src := image.NewRGBA(image.Rect(0, 0, 40, 20))
	for y := range 20 {
		for x := range 40 {
			c := color.RGBA{0, 255, 0, 255}
			if x < 10 {
				c = color.RGBA{255, 0, 0, 255}
			} else if x >= 30 {
				c = color.RGBA{0, 0, 255, 255}
			}
			src.Set(x, y, c)
		}
	}
	path := filepath.Join(t.TempDir(), "still.png")
	f, _ := os.Create(path)
	png.Encode(f, src)
	f.Close()
	chw, err := LoadStill(path, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(chw) != 3*8*8 {
		t.Fatalf("%d values, want %d", len(chw), 3*64)
	}
	// The centre crop keeps only the green middle.
	for i := range 64 {
		if chw[i] > -0.75 || chw[64+i] < 0.75 || chw[128+i] > -0.75 {
			t.Fatalf("pixel %d = (%v,%v,%v), want green", i, chw[i], chw[64+i], chw[128+i])
		}
	}
	if _, err := LoadStill(filepath.Join(t.TempDir(), "missing.png"), 8); err == nil {
		t.Error("LoadStill of a missing file succeeded")
	}
}

// Each encode writes under its own temporary name: two writers of one path
// at once (a second run, a preview beside a sample) both publish a complete
// file, the last rename wins, and no temporary file is left; a file that
// happens to carry the old fixed temporary name is not touched.
func TestWriteMP4UniqueTempNames(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "a.mp4")
	other := filepath.Join(dir, ".tmp-a.mp4")
	if err := os.WriteFile(other, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	counts := []int{30, 45}
	errs := make(chan error, len(counts))
	for _, n := range counts {
		frames, _ := Frames(gradient(n, 16, 16), n, 16, 16)
		go func() { errs <- WriteMP4(context.Background(), path, frames, Options{FPS: 10}) }()
	}
	for range counts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=nb_read_frames", "-of", "default=nw=1:nk=1", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	if n := strings.TrimSpace(string(out)); n != "30" && n != "45" {
		t.Errorf("published mp4 has %s frames, want 30 or 45 (one writer's whole file)", n)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("%d entries in the folder, want the mp4 and the unrelated file", len(entries))
	}
	if b, _ := os.ReadFile(other); string(b) != "not ours" {
		t.Errorf("the file named like the old temporary file changed: %q", b)
	}
}
