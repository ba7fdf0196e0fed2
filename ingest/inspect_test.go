package ingest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/synth"
)

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

// TestQuarantineReasons triggers every quarantine reason with a real file:
// synth's fault files, a copy of a good video, and a video whose codec tag
// no decoder knows.
func TestQuarantineReasons(t *testing.T) {
	needFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()
	spec := synth.Spec{Width: 160, Height: 96, FPS: 10, Seconds: 6, FrozenHead: 2, FrozenTail: 2, Seed: 3}
	if _, err := synth.WriteFaults(ctx, dir, spec); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.mp4")
	if err := synth.Render(ctx, spec, good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("zz-copy-of-good.mp4", data)
	write("unknown-codec.mp4", bytes.ReplaceAll(data, []byte("avc1"), []byte("zzzz")))

	want := map[string]string{
		"fault-empty.mp4":               ReasonEmptyFile,
		"fault-truncated.mp4":           ReasonProbeFailed,
		"fault-truncated-faststart.mp4": ReasonTruncated,
		"fault-too-short.mp4":           ReasonTooShort,
		"fault-audio-only.mp4":          ReasonNoVideoStream,
		"fault-not-video.mp4":           ReasonProbeFailed,
		synth.OddName + ".mp4":          "",
		"good.mp4":                      "",
		"zz-copy-of-good.mp4":           ReasonDuplicate,
		"unknown-codec.mp4":             ReasonUnsupported,
	}
	paths, err := Find(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(want) {
		t.Fatalf("Find found %d files, want %d: %v", len(paths), len(want), paths)
	}
	o := DefaultOptions()
	videos, err := InspectAll(ctx, paths, 2, func(ctx context.Context, p string) (Video, error) { return Inspect(ctx, p, o) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range videos {
		name := filepath.Base(v.Path)
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected file %s", name)
			continue
		}
		if w == "" {
			if !v.OK() {
				t.Errorf("%s: quarantined %s (%s), want ok", name, v.Reason, v.Message)
			}
			continue
		}
		if v.OK() || v.Reason != w {
			t.Errorf("%s: status %s reason %q (%s), want quarantined %s", name, v.Status, v.Reason, v.Message, w)
		}
		if v.Message == "" {
			t.Errorf("%s: no message", name)
		}
	}
}

func TestInspectGood(t *testing.T) {
	needFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "rot.mp4")
	spec := synth.Spec{Width: 192, Height: 108, FPS: 12, Seconds: 5, Rotate: 90, Seed: 9}
	if err := synth.Render(ctx, spec, path); err != nil {
		t.Fatal(err)
	}
	v, err := Inspect(ctx, path, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() {
		t.Fatalf("quarantined: %s (%s)", v.Reason, v.Message)
	}
	if v.Width != 192 || v.Height != 108 || v.Rotation != 90 || v.Codec != "h264" || v.PixFmt != "yuv420p" {
		t.Errorf("probe: %+v", v)
	}
	if w, h := v.DisplaySize(); w != 108 || h != 192 {
		t.Errorf("display size %dx%d, want 108x192", w, h)
	}
	if v.Duration < 4.9 || v.Duration > 5.1 || v.FPS != 12 || v.Streams != 1 {
		t.Errorf("duration %g fps %g streams %d", v.Duration, v.FPS, v.Streams)
	}
	if len(v.SHA256) != 64 || v.ID != v.SHA256[:16] {
		t.Errorf("id %q sha256 %q", v.ID, v.SHA256)
	}
	// A renamed file keeps its id.
	moved := filepath.Join(dir, "renamed clip.mp4")
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	v2, err := Inspect(ctx, moved, DefaultOptions())
	if err != nil || v2.ID != v.ID {
		t.Errorf("renamed: id %q (%v), want %q", v2.ID, err, v.ID)
	}
	// A cancelled context is an error, not a quarantine.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Inspect(cctx, moved, DefaultOptions()); err == nil {
		t.Error("Inspect with a cancelled context returned no error")
	}
	if !strings.HasPrefix(v.Path, dir) {
		t.Errorf("path %q", v.Path)
	}
}
