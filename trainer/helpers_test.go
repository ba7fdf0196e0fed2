package trainer

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/shards"
)

// cloudFrame renders frame fr of video vi: soft blobs drifting right by
// one pixel per frame over a sky gradient, so consecutive frames are
// predictable from each other.
func cloudFrame(vi, fr, size int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			u := float64(x-fr-vi*5) / float64(size) * 2 * math.Pi
			v := float64(y+vi*3) / float64(size) * 2 * math.Pi
			c := 0.5 + 0.5*math.Sin(u)*math.Cos(v)
			sky := float64(y) / float64(size)
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(255 * (0.3*sky + 0.7*c)),
				G: uint8(255 * (0.4*sky + 0.6*c)),
				B: uint8(255 * (0.5 + 0.5*c*sky)),
				A: 255,
			})
		}
	}
	return img
}

// makeShards packs nVideos videos of nFrames frames (size x size) with a
// quarter held out for validation, and returns the shards folder.
func makeShards(t testing.TB, nVideos, nFrames, size int) string {
	t.Helper()
	dir := t.TempDir()
	fdir := filepath.Join(dir, "frames")
	var idx []frames.Video
	for vi := range nVideos {
		id := fmt.Sprintf("v%02d", vi)
		if err := os.MkdirAll(filepath.Join(fdir, id), 0o755); err != nil {
			t.Fatal(err)
		}
		for fr := 1; fr <= nFrames; fr++ {
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, cloudFrame(vi, fr, size), &jpeg.Options{Quality: 95}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(frames.FramePath(fdir, id, fr), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		idx = append(idx, frames.Video{ID: id, Source: "/v/" + id + ".mp4", Frames: nFrames, FPS: 5, TrimHead: 2,
			DropFirst: true, Size: size, Status: frames.StatusOK})
	}
	if err := frames.WriteIndex(fdir, idx, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "shards")
	if _, err := shards.Pack(context.Background(), shards.PackOptions{FramesDir: fdir, ValFraction: 0.25, Seed: 1}, shards.DirOutput(out)); err != nil {
		t.Fatal(err)
	}
	return out
}

// sharedDir outlives single tests (fixtures shared by several); TestMain
// removes it.
var sharedDir string

func TestMain(m *testing.M) {
	var err error
	if sharedDir, err = os.MkdirTemp("", "trainer-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(sharedDir)
	os.Exit(code)
}

// testDir is a testing.TB whose TempDir is a fresh folder under root.
type testDir struct {
	testing.TB
	root string
}

func (d testDir) TempDir() string {
	dir, err := os.MkdirTemp(d.root, "fixture-")
	if err != nil {
		d.Fatal(err)
	}
	return dir
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
