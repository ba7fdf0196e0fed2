package frames

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/synth"
)

// testVideo is one input of the fidelity tests: a synth spec, or an ffmpeg
// lavfi command for what synth does not make (full-range colour, odd size).
type testVideo struct {
	name  string
	spec  *synth.Spec
	lavfi []string // ffmpeg args after -f lavfi -i, output appended
}

var testVideos = []testVideo{
	{name: "landscape.mp4", spec: &synth.Spec{Width: 320, Height: 240, FPS: 25, Seconds: 5.4, FrozenHead: 2, FrozenTail: 2, Seed: 1}},
	{name: "wide-downscale.mp4", spec: &synth.Spec{Width: 960, Height: 540, FPS: 24, Seconds: 4.8, FrozenHead: 2, FrozenTail: 2, Seed: 2}},
	{name: "portrait.mp4", spec: &synth.Spec{Width: 240, Height: 320, FPS: 30, Seconds: 5.2, FrozenHead: 2, FrozenTail: 2, Seed: 3}},
	{name: "vp9.webm", spec: &synth.Spec{Width: 256, Height: 144, FPS: 25, Seconds: 5, FrozenHead: 2, FrozenTail: 2, Codec: synth.VP9, Seed: 4}},
	{name: "rotated.mp4", spec: &synth.Spec{Width: 320, Height: 180, FPS: 25, Seconds: 5, FrozenHead: 2, FrozenTail: 2, Rotate: 90, Seed: 5}},
	{name: "tenbit.mp4", spec: &synth.Spec{Width: 288, Height: 216, FPS: 25, Seconds: 5, FrozenHead: 2, FrozenTail: 2, PixFmt: "yuv420p10le", Seed: 6}},
	{name: "vfr.mp4", spec: &synth.Spec{Width: 320, Height: 240, FPS: 30, Seconds: 5.5, FrozenHead: 2, FrozenTail: 2, VFR: true, Seed: 7}},
	{name: "fullrange.mp4", lavfi: []string{"testsrc2=s=320x240:r=30:d=5.3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuvj420p"}},
	{name: "oddsize.mkv", lavfi: []string{"testsrc2=s=321x241:r=25:d=5", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p"}},
}

var (
	videosOnce sync.Once
	videosDir  string
	videosErr  error
)

// fixtures renders testVideos once per test binary into a shared temp folder.
func fixtures(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	videosOnce.Do(func() {
		videosDir, videosErr = os.MkdirTemp("", "frames-test-")
		if videosErr != nil {
			return
		}
		var wg sync.WaitGroup
		errs := make([]error, len(testVideos))
		sem := make(chan struct{}, 2)
		for i, tv := range testVideos {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				errs[i] = renderTestVideo(context.Background(), tv, filepath.Join(videosDir, tv.name))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil && videosErr == nil {
				videosErr = err
			}
		}
	})
	if videosErr != nil {
		t.Fatalf("test videos: %v", videosErr)
	}
	return videosDir
}

func renderTestVideo(ctx context.Context, tv testVideo, path string) error {
	if tv.spec != nil {
		return synth.Render(ctx, *tv.spec, path)
	}
	args := append([]string{"-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"}, tv.lavfi...)
	out, err := exec.CommandContext(ctx, "ffmpeg", append(args, path)...).CombinedOutput()
	if err != nil {
		return &exec.ExitError{Stderr: out}
	}
	return nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if videosDir != "" {
		os.RemoveAll(videosDir)
	}
	os.Exit(code)
}

// sourceOf probes path the way the ingest stage does.
func sourceOf(t *testing.T, path string) Source {
	t.Helper()
	v, err := ingest.Inspect(context.Background(), path, ingest.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() {
		t.Fatalf("ingest %s: %s (%s)", filepath.Base(path), v.Reason, v.Message)
	}
	return SourceOf(v)
}
