package stages

import (
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/synth"
)

var videoKinds = []pipeline.Kind{SynthKind(), IngestKind(), FramesKind()}

// folderYAML is ingest of a folder and frames at a small size.
func folderYAML(folder string) string {
	return fmt.Sprintf(`stages:
  ingest:
    kind: ingest
    params: {folder: %q}
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 64, workers: 2}
`, folder)
}

func renderTiny(t *testing.T, path string, seed int64) {
	t.Helper()
	spec := synth.Spec{Width: 96, Height: 64, FPS: 10, Seconds: 5.5, FrozenHead: 2, FrozenTail: 2, Seed: seed}
	if err := synth.Render(context.Background(), spec, path); err != nil {
		t.Fatal(err)
	}
}

func readIndex(t *testing.T, dir string) map[string]frames.Video {
	t.Helper()
	rows, err := frames.ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]frames.Video{}
	for _, r := range rows {
		out[filepath.Base(r.Source)] = r
	}
	return out
}

func report(res []pipeline.Result, stage string) string {
	for _, r := range res {
		if r.Stage == stage {
			return strings.Join(r.Reports, "\n")
		}
	}
	return ""
}

// synth with faults -> ingest -> frames: the bad files are quarantined with
// their reasons and reported, the good ones become 64x64 frames listed in
// index.jsonl, and --strict turns the quarantines into a failure.
func TestIngestFramesFromSynthFaults(t *testing.T) {
	p := pipelinetest.New(t, videoKinds, `stages:
  videos:
    kind: synth
    params: {count: 2, width: 96, height: 64, fps: 10, seconds: 5.5, faults: true}
  ingest:
    kind: ingest
    needs: [videos]
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 64}
`)
	res := p.Run(pipeline.Options{})
	manifest, err := ingest.ReadManifest(filepath.Join(p.Dir("ingest"), ingest.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, v := range manifest {
		reasons[filepath.Base(v.Path)] = v.Reason
	}
	want := map[string]string{
		"synth-0000.mp4": "", "synth-0001.mp4": "", synth.OddName + ".mp4": "",
		"fault-empty.mp4": ingest.ReasonEmptyFile, "fault-truncated.mp4": ingest.ReasonProbeFailed,
		"fault-truncated-faststart.mp4": ingest.ReasonTruncated, "fault-too-short.mp4": ingest.ReasonTooShort,
		"fault-audio-only.mp4": ingest.ReasonNoVideoStream, "fault-not-video.mp4": ingest.ReasonProbeFailed,
	}
	for name, w := range want {
		if got, ok := reasons[name]; !ok || got != w {
			t.Errorf("%s: reason %q (listed %v), want %q", name, got, ok, w)
		}
	}
	rep := report(res, "ingest")
	if !strings.Contains(rep, "quarantined fault-empty.mp4: empty_file (") || !strings.Contains(rep, "9 videos: 3 ok, 6 quarantined") {
		t.Errorf("ingest report:\n%s", rep)
	}

	idx := readIndex(t, p.Dir("frames"))
	if len(idx) != 3 {
		t.Fatalf("index has %d rows, want 3: %v", len(idx), idx)
	}
	for name, v := range idx {
		if v.Status != frames.StatusOK || v.Frames < 6 || v.Frames > 8 || v.Size != 64 {
			t.Errorf("%s: %+v", name, v)
		}
		f, err := os.Open(frames.FramePath(p.Dir("frames"), v.ID, v.Frames))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := jpeg.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != 64 || cfg.Height != 64 {
			t.Errorf("%s: last frame %dx%d %v", name, cfg.Width, cfg.Height, err)
		}
	}
	if rep := report(res, "frames"); !strings.Contains(rep, "3 videos, ") || !strings.Contains(rep, "3 extracted, 0 cached") {
		t.Errorf("frames report:\n%s", rep)
	}

	_, err = p.TryRun(context.Background(), pipeline.Options{Stages: []string{"ingest"}, Strict: true})
	if err == nil || !strings.Contains(err.Error(), "quarantined") {
		t.Errorf("--strict run: err = %v, want a quarantine failure", err)
	}
}

// Editing one source video re-extracts that video only, adding one
// extracts only it, removing one removes its frames, and renaming one keeps
// its frames.
func TestFramesPerVideoCache(t *testing.T) {
	src := t.TempDir()
	for i, name := range []string{"a.mp4", "b.mp4"} {
		renderTiny(t, filepath.Join(src, name), int64(i+1))
	}
	p := pipelinetest.New(t, videoKinds, folderYAML(src))
	res := p.Run(pipeline.Options{})
	if rep := report(res, "frames"); !strings.Contains(rep, "2 extracted, 0 cached") {
		t.Fatalf("first run: %s", rep)
	}
	idx := readIndex(t, p.Dir("frames"))
	a, b := idx["a.mp4"], idx["b.mp4"]
	aFrame := frames.FramePath(p.Dir("frames"), a.ID, 1)
	stamp := time.Now().Add(-time.Hour)
	if err := os.Chtimes(aFrame, stamp, stamp); err != nil {
		t.Fatal(err)
	}

	renderTiny(t, filepath.Join(src, "b.mp4"), 7) // edit b
	renderTiny(t, filepath.Join(src, "c.mp4"), 3) // add c
	res = p.Run(pipeline.Options{})
	if got := pipelinetest.Ran(res); !slices.Equal(got, []string{"ingest", "frames"}) {
		t.Fatalf("ran %v", got)
	}
	if rep := report(res, "frames"); !strings.Contains(rep, "3 videos") || !strings.Contains(rep, "2 extracted, 1 cached") {
		t.Errorf("after edit+add: %s", rep)
	}
	fi, err := os.Stat(aFrame)
	if err != nil || !fi.ModTime().Equal(stamp) {
		t.Errorf("a's frames were rewritten (%v)", err)
	}
	idx = readIndex(t, p.Dir("frames"))
	if idx["b.mp4"].ID == b.ID {
		t.Error("b's id did not change with its content")
	}
	if _, err := os.Stat(filepath.Join(p.Dir("frames"), b.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old frames of b still there: %v", err)
	}

	// Remove c, rename a: c's frames go, a's stay cached under the same id.
	if err := os.Remove(filepath.Join(src, "c.mp4")); err != nil {
		t.Fatal(err)
	}
	cID := idx["c.mp4"].ID
	if err := os.Rename(filepath.Join(src, "a.mp4"), filepath.Join(src, "renamed.mp4")); err != nil {
		t.Fatal(err)
	}
	res = p.Run(pipeline.Options{})
	if rep := report(res, "frames"); !strings.Contains(rep, "2 videos") || !strings.Contains(rep, "0 extracted, 2 cached") {
		t.Errorf("after remove+rename: %s", rep)
	}
	if _, err := os.Stat(filepath.Join(p.Dir("frames"), cID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("frames of the removed c still there: %v", err)
	}
	idx = readIndex(t, p.Dir("frames"))
	if r := idx["renamed.mp4"]; r.ID != a.ID || r.Source != filepath.Join(src, "renamed.mp4") {
		t.Errorf("renamed a: row %+v, want id %s", r, a.ID)
	}
}

// A run cancelled midway leaves only complete video folders, no ffmpeg
// running, and the next run extracts only what is missing.
func TestFramesKillAndResume(t *testing.T) {
	src := t.TempDir()
	for i := range 4 {
		renderTiny(t, filepath.Join(src, fmt.Sprintf("v%d.mp4", i)), int64(10+i))
	}
	p := pipelinetest.New(t, videoKinds, strings.Replace(folderYAML(src), "workers: 2", "workers: 1", 1))
	out := p.Dir("frames")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // cancel once the first video is in place
		defer cancel()
		for ctx.Err() == nil {
			m, _ := filepath.Glob(filepath.Join(out, "*", frames.RowFile))
			for _, f := range m {
				if !pipeline.IsTemp(filepath.Base(filepath.Dir(f))) {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := p.TryRun(ctx, pipeline.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: err = %v, want context.Canceled", err)
	}
	for _, s := range []string{p.Workdir, src} {
		if left := processesMentioning(t, s); len(left) > 0 {
			t.Errorf("processes left after the cancelled run: %v", left)
		}
	}
	ents, _ := os.ReadDir(out)
	done := 0
	for _, e := range ents {
		if pipeline.IsTemp(e.Name()) || !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(out, e.Name(), frames.RowFile)); err != nil {
			t.Errorf("partial folder %s after the cancelled run", e.Name())
		}
		done++
	}
	if done == 0 || done == 4 {
		t.Fatalf("%d of 4 videos done when cancelled; want a partial run", done)
	}
	res := p.Run(pipeline.Options{})
	want := fmt.Sprintf("%d extracted, %d cached", 4-done, done)
	if rep := report(res, "frames"); !strings.Contains(rep, want) {
		t.Errorf("resumed run: %s, want %q", rep, want)
	}
	if idx := readIndex(t, out); len(idx) != 4 {
		t.Errorf("index has %d rows after resuming", len(idx))
	}
}

// processesMentioning lists running processes whose command line holds s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
