package synth

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tiny is the spec the tests render: small enough for seconds per test.
var tiny = Spec{Width: 96, Height: 64, FPS: 8, Seconds: 6, FrozenHead: 2, FrozenTail: 2, Seed: 11}

func render(t *testing.T, spec Spec, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := Render(context.Background(), spec, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// The same spec gives the same decoded frames (and the same bytes); another
// seed gives other frames.
func TestRenderDeterministic(t *testing.T) {
	for _, codec := range []string{H264, VP9} {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			sp := tiny
			sp.Codec = codec
			a := render(t, sp, "a"+sp.Ext())
			b := render(t, sp, "b"+sp.Ext())
			fa, fb := frameMD5s(t, a), frameMD5s(t, b)
			if len(fa) != sp.Frames() {
				t.Fatalf("decoded %d frames, want %d", len(fa), sp.Frames())
			}
			if !slices.Equal(fa, fb) {
				t.Fatalf("two renders of one spec decode differently:\n%v\n%v", fa, fb)
			}
			ba, _ := os.ReadFile(a)
			bb, _ := os.ReadFile(b)
			if string(ba) != string(bb) {
				t.Errorf("two renders of one spec differ in bytes (%d vs %d)", len(ba), len(bb))
			}
			sp.Seed++
			if fc := frameMD5s(t, render(t, sp, "c"+sp.Ext())); slices.Equal(fa, fc) {
				t.Errorf("seeds %d and %d decode to the same frames", sp.Seed-1, sp.Seed)
			}
		})
	}
}

// Frozen spans decode to identical consecutive frames; every other pair of
// consecutive frames differs. Covers fractional frame positions (7.5 fps,
// 1.5 s), 10-bit, VP9, and a VFR video whose dropped frames are all in the
// motion span.
func TestFrozenHeadAndTail(t *testing.T) {
	cases := map[string]Spec{
		"h264":        tiny,
		"vp9":         func() Spec { s := tiny; s.Codec = VP9; return s }(),
		"10bit":       func() Spec { s := tiny; s.PixFmt = "yuv420p10le"; return s }(),
		"fractional":  func() Spec { s := tiny; s.FPS, s.FrozenHead, s.FrozenTail, s.Seconds = 7.5, 1.5, 1.2, 5.5; return s }(),
		"vfr":         func() Spec { s := tiny; s.VFR = true; return s }(),
		"no-frozen":   func() Spec { s := tiny; s.FrozenHead, s.FrozenTail = 0, 0; return s }(),
		"rotated-big": func() Spec { s := tiny; s.Width, s.Height, s.Rotate, s.Seed = 192, 108, 90, 5; return s }(),
	}
	for name, sp := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sp = sp.WithDefaults()
			path := render(t, sp, "v"+sp.Ext())
			sums := frameMD5s(t, path)
			times := frameTimes(t, path)
			if len(sums) != len(times) {
				t.Fatalf("%d frames but %d timestamps", len(sums), len(times))
			}
			const eps = 1e-3
			for i := 1; i < len(sums); i++ {
				inHead := times[i] <= sp.FrozenHead+eps
				inTail := times[i-1] >= sp.Seconds-sp.FrozenTail-eps
				same := sums[i] == sums[i-1]
				switch {
				case (inHead || inTail) && !same:
					t.Errorf("frames at %.3fs and %.3fs differ inside a frozen span", times[i-1], times[i])
				case !inHead && !inTail && same:
					t.Errorf("frames at %.3fs and %.3fs are identical outside the frozen spans", times[i-1], times[i])
				}
			}
		})
	}
}

// Clouds move: in the middle of the clip, frames one second apart differ by
// more than a few grey levels on average, for every seed (wind varies in
// speed and direction, never to zero). The light changes too: the first and
// last frames of the motion differ more than neighbours do.
func TestMotion(t *testing.T) {
	for seed := int64(0); seed < 4; seed++ {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) {
			t.Parallel()
			sp := tiny
			sp.Seed = seed
			sp.Seconds, sp.FrozenHead, sp.FrozenTail = 8, 1, 1
			frames := grayFrames(t, render(t, sp, "m.mp4"), sp.Width, sp.Height)
			fps := int(sp.FPS)
			mid := len(frames) / 2
			d := meanAbsDiff(frames[mid-fps/2], frames[mid+fps/2])
			t.Logf("seed %d: mean abs diff 1 s apart %.2f", seed, d)
			if d < 1.5 {
				t.Errorf("mean absolute difference between frames 1 s apart in the middle = %.2f, want >= 1.5", d)
			}
		})
	}
}

// A cancelled render returns the context's error and leaves no file behind.
func TestRenderCancelled(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sp := tiny
	sp.Seconds = 60
	if err := Render(ctx, sp, filepath.Join(dir, "x.mp4")); err == nil {
		t.Fatal("Render with a cancelled context succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("cancelled render left %v", ents)
	}
}

// ffmpeg's own message reaches the error.
func TestFFmpegErrorCarriesStderr(t *testing.T) {
	err := runFFmpeg(context.Background(), []string{"-v", "error", "-i", "/nonexistent/input.mp4", "-f", "null", "-"})
	if err == nil || !strings.Contains(err.Error(), "No such file") {
		t.Fatalf("err = %v, want ffmpeg's 'No such file' message", err)
	}
}

// Check accepts a rendered video and rejects a truncated copy and a video
// of another spec.
func TestCheck(t *testing.T) {
	sp := tiny
	sp.VFR = true
	path := render(t, sp, "v.mp4")
	if err := Check(context.Background(), sp, path); err != nil {
		t.Fatalf("Check of a good render: %v", err)
	}
	other := sp
	other.Width = 64
	if err := Check(context.Background(), other, path); err == nil || !strings.Contains(err.Error(), "size") {
		t.Errorf("Check against another size = %v", err)
	}
	var fast Fault
	for _, f := range Faults(sp) {
		if f.Kind == FaultTruncatedFast {
			fast = f
		}
	}
	if err := WriteFault(context.Background(), fast, sp, path); err != nil {
		t.Fatal(err)
	}
	sp.VFR = false
	if err := Check(context.Background(), sp, path); err == nil || !strings.Contains(err.Error(), "frames decode") {
		t.Errorf("Check of a truncated faststart video = %v, want a frame-count error", err)
	}
}

// When ffmpeg dies, Render stops rendering, reports the failure and leaves
// nothing behind. (Not parallel: it swaps the package's FFmpeg.)
func TestRenderEncoderFails(t *testing.T) {
	old := FFmpeg
	FFmpeg = "false" // exits 1 without reading stdin
	defer func() { FFmpeg = old }()
	dir := t.TempDir()
	sp := tiny
	sp.Width, sp.Height, sp.Seconds = 640, 360, 600 // long enough to notice if rendering went on
	err := Render(context.Background(), sp, filepath.Join(dir, "x.mp4"))
	if err == nil || !strings.Contains(err.Error(), "ffmpeg") {
		t.Fatalf("Render with a failing ffmpeg = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("failed render left %v", ents)
	}
}
