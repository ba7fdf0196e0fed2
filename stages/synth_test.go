package stages

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/synth"
)

func synthYAML(count int, extra string) string {
	return fmt.Sprintf("stages:\n  videos:\n    kind: synth\n    params: {count: %d, width: 64, height: 48, fps: 6, seconds: 5, frozen_head: 1s, frozen_tail: 1, seed: 7%s}\n", count, extra)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func reloadIn(t *testing.T, p *pipelinetest.Pipeline, src string) *pipelinetest.Pipeline {
	t.Helper()
	cfg, err := pipeline.Load("test.yaml", p.Config.Dir, []byte("workdir: "+p.Workdir+"\n"+src), pipeline.NewRegistry(p.Kinds))
	if err != nil {
		t.Fatal(err)
	}
	return &pipelinetest.Pipeline{T: t, Config: cfg, Workdir: p.Workdir, Kinds: p.Kinds}
}

// Raising count renders only the new video: the old files are not rewritten
// and the report says so; the folder holds exactly the videos.
func TestSynthStageCountRendersOnlyNew(t *testing.T) {
	p := pipelinetest.Run(t, []pipeline.Kind{SynthKind()}, synthYAML(2, ""))
	dir := p.Dir("videos")
	if got, want := listDir(t, dir), []string{"synth-0000.mp4", "synth-0001.mp4"}; !slices.Equal(got, want) {
		t.Fatalf("videos folder holds %v, want %v", got, want)
	}
	old := filepath.Join(dir, "synth-0000.mp4")
	// Back-date the file: a re-render would give it a fresh mtime.
	stamp := mustStat(t, old).ModTime().Add(-1e12)
	if err := os.Chtimes(old, stamp, stamp); err != nil {
		t.Fatal(err)
	}

	res := reloadIn(t, p, synthYAML(3, "")).Run(pipeline.Options{})
	if got := pipelinetest.Ran(res); !slices.Equal(got, []string{"videos"}) {
		t.Fatalf("ran %v, want [videos]", got)
	}
	if got, want := listDir(t, dir), []string{"synth-0000.mp4", "synth-0001.mp4", "synth-0002.mp4"}; !slices.Equal(got, want) {
		t.Fatalf("videos folder holds %v, want %v", got, want)
	}
	if !mustStat(t, old).ModTime().Equal(stamp) {
		t.Errorf("synth-0000.mp4 was rewritten when count went from 2 to 3")
	}
	if r := strings.Join(res[0].Reports, "\n"); !strings.Contains(r, "1 rendered, 2 cached") {
		t.Errorf("report %q, want 1 rendered, 2 cached", r)
	}
}

// Verify passes on the stage's output and fails once a video is damaged.
func TestSynthStageVerify(t *testing.T) {
	p := pipelinetest.Run(t, []pipeline.Kind{SynthKind()}, synthYAML(2, ""))
	k := SynthKind()
	params := p.Config.Stages[0].Params
	if err := k.Verify(t.Context(), p.Dir("videos"), params); err != nil {
		t.Fatalf("Verify of a fresh run: %v", err)
	}
	path := filepath.Join(p.Dir("videos"), "synth-0001.mp4")
	b := pipelinetest.ReadFile(t, path)
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := k.Verify(t.Context(), p.Dir("videos"), params); err == nil || !strings.Contains(err.Error(), "synth-0001.mp4") {
		t.Fatalf("Verify after truncating synth-0001.mp4 = %v", err)
	}
}

// faults: true writes every fault file next to the videos.
func TestSynthStageFaults(t *testing.T) {
	p := pipelinetest.Run(t, []pipeline.Kind{SynthKind()}, synthYAML(1, ", faults: true"))
	got := listDir(t, p.Dir("videos"))
	want := []string{"synth-0000.mp4"}
	for _, f := range synth.Faults(synth.Spec{}) {
		want = append(want, f.Name)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("videos folder holds %q, want %q", got, want)
	}
}

// Params the engine cannot check (odd sizes, rotation of WebM) fail the
// stage with the reason, before anything is rendered.
func TestSynthStageRejectsBadSpec(t *testing.T) {
	p := pipelinetest.New(t, []pipeline.Kind{SynthKind()}, "stages:\n  videos:\n    kind: synth\n    params: {width: 63}\n")
	_, err := p.TryRun(t.Context(), pipeline.Options{})
	if err == nil || !strings.Contains(err.Error(), "even") {
		t.Fatalf("err = %v, want a message about even sizes", err)
	}
}

func mustStat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}
