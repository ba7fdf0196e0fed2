package frames

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// recipe runs the seed recipe's command line for one video, verbatim but
// for the shell: the duration from ffprobe, `d - 4` as bc prints it, one
// ffmpeg call with output -ss/-t/-r, the scale+crop filter and -q 0 into
// dir/%06d.jpg, then `rm dir/000001.jpg`. It returns the frames in order.
func recipe(t *testing.T, video, dir string) [][]byte {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration",
		"-of", "default=noprint_wrappers=1:nokey=1", video).Output()
	if err != nil {
		t.Fatalf("recipe ffprobe %s: %v", video, err)
	}
	ds := strings.TrimSpace(string(out))
	d, err := strconv.ParseFloat(ds, 64)
	if err != nil {
		t.Fatalf("recipe duration %q: %v", ds, err)
	}
	cut := strconv.FormatFloat(d-4, 'f', len(ds)-strings.IndexByte(ds, '.')-1, 64) // bc keeps d's scale
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", video, "-ss", "00:00:02.00", "-t", cut, "-r", "5",
		"-vf", "scale='if(gt(iw,ih),-1,512)':'if(gt(iw,ih),512,-1)',crop=512:512:exact=1",
		"-q", "0", "-an", filepath.Join(dir, "%06d.jpg"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recipe ffmpeg %s: %v\n%s", video, err, out)
	}
	if err := os.Remove(filepath.Join(dir, "000001.jpg")); err != nil {
		t.Fatal(err)
	}
	var frames [][]byte
	for i := 2; ; i++ {
		b, err := os.ReadFile(filepath.Join(dir, FrameName(i)))
		if os.IsNotExist(err) {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b)
	}
}

// TestMatchesRecipe is the fidelity oracle: on synth videos of several
// sizes, portrait, VP9, rotated, 10-bit and VFR (and full-range and odd-sized
// ffmpeg test patterns), Extract writes the same number of frames as the
// recipe, byte-identical.
func TestMatchesRecipe(t *testing.T) {
	dir := fixtures(t)
	for _, tv := range testVideos {
		t.Run(tv.name, func(t *testing.T) {
			video := filepath.Join(dir, tv.name)
			want := recipe(t, video, filepath.Join(t.TempDir(), "recipe"))
			if len(want) == 0 {
				t.Fatal("the recipe wrote no frames; the test video is too short")
			}
			src := sourceOf(t, video)
			out := filepath.Join(t.TempDir(), "ours")
			res, err := Extract(context.Background(), src, DefaultParams(), out)
			if err != nil {
				t.Fatal(err)
			}
			if res.Damaged {
				t.Errorf("damaged: %s", res.Message)
			}
			if res.Frames != len(want) {
				t.Fatalf("%d frames, the recipe wrote %d", res.Frames, len(want))
			}
			for i, w := range want {
				got, err := os.ReadFile(FramePath(filepath.Dir(out), filepath.Base(out), i+1))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, w) {
					t.Fatalf("frame %d differs from the recipe's (%d vs %d bytes)", i+1, len(got), len(w))
				}
			}
			cfg, err := jpeg.DecodeConfig(bytes.NewReader(want[0]))
			if err != nil || cfg.Width != 512 || cfg.Height != 512 {
				t.Errorf("frame 1: %dx%d, %v; want 512x512", cfg.Width, cfg.Height, err)
			}
			if d := res.Expected - res.Frames; d < -1 || d > 1 {
				t.Errorf("expected %d frames, got %d", res.Expected, res.Frames)
			}
			t.Log(fmt.Sprintf("%d frames identical to the recipe's", res.Frames))
		})
	}
}
