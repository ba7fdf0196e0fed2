package shards

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/timelapse-ml/pipeline/frames"
)

// testVideo describes a video of a test frames folder.
type testVideo struct {
	id     string
	frames int
	status string // "" means ok
}

// frameCount is the number of frame files written: none for a damaged
// video, as the frames stage leaves it by default.
func (v testVideo) frameCount() int {
	if v.status == frames.StatusDamaged {
		return 0
	}
	return v.frames
}

// makeFrame returns a JPEG of size x size whose colours depend on the
// video number and frame, so frames of different videos differ.
func makeFrame(t testing.TB, vi, fr, size int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(x*255/size + vi*40),
				G: uint8(y*255/size + fr*7),
				B: uint8((vi*31 + fr*13 + x*y) % 256),
				A: 255,
			})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeFramesDir writes a frames stage output folder (JPEGs and
// index.jsonl) as the frames package lays it out, and returns its path.
func makeFramesDir(t testing.TB, size int, videos ...testVideo) string {
	t.Helper()
	dir := t.TempDir()
	var idx []frames.Video
	for vi, v := range videos {
		if err := os.MkdirAll(filepath.Join(dir, v.id), 0o755); err != nil {
			t.Fatal(err)
		}
		for fr := 1; fr <= v.frameCount(); fr++ {
			if err := os.WriteFile(frames.FramePath(dir, v.id, fr), makeFrame(t, vi, fr, size), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		st := v.status
		if st == "" {
			st = frames.StatusOK
		}
		idx = append(idx, frames.Video{
			ID: v.id, Source: "/videos/" + v.id + ".mp4", Frames: v.frameCount(),
			FPS: 5, TrimHead: 2, DropFirst: true, Size: size, Status: st,
		})
	}
	if err := frames.WriteIndex(dir, idx, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pack packs framesDir into a fresh folder and returns it.
func pack(t testing.TB, opt PackOptions) (string, *PackResult) {
	t.Helper()
	out := t.TempDir()
	res, err := Pack(context.Background(), opt, DirOutput(out))
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return out, res
}

// open opens a shards folder, closing it at the end of the test.
func open(t testing.TB, dir string) *Dataset {
	t.Helper()
	ds, err := Open(dir)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { ds.Close() })
	return ds
}

// fiveVideos is the usual test set: varied lengths, and a damaged video
// without frames.
var fiveVideos = []testVideo{
	{id: "alpha", frames: 7},
	{id: "bravo", frames: 3},
	{id: "charlie", frames: 12},
	{id: "delta", frames: 5},
	{id: "echo", frames: 9},
	{id: "foxtrot", frames: 4, status: frames.StatusDamaged},
}
