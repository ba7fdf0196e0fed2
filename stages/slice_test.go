package stages

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/internal/videotest"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
)

// The Indexed Job contract: slices 0..N-1 of the frames stage, then a merge
// (the engine's run adopting their work), cover every video once and give
// the same manifest, frames, index and shards as a local run, byte for byte;
// the merge runs no ffmpeg, and a missing slice stops the merge.
func TestSlicesThenMergeEqualLocal(t *testing.T) {
	ctx := context.Background()
	src := videotest.Folder(t, 11)
	kinds := []pipeline.Kind{IngestKind(), FramesKind(), PackKind()}
	local := pipelinetest.Run(t, kinds, videotest.Config(src))

	p := pipelinetest.New(t, kinds, videotest.Config(src))
	const n = 3
	if _, err := CheckSlices(ctx, p.Config, "frames"); err == nil {
		t.Fatal("merge before any slice: no error")
	}
	seen := 0
	for i := range n {
		rec, err := RunSlice(ctx, p.Config, "frames", i, n)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(rec.Paths)
		if i == 0 {
			if _, err := CheckSlices(ctx, p.Config, "frames"); err == nil || !strings.Contains(err.Error(), "1, 2 of 3 have not finished") {
				t.Errorf("merge with slices missing: %v", err)
			}
		}
	}
	if seen != 5 {
		t.Errorf("slices listed %d videos, want 5", seen)
	}
	if _, err := os.Stat(p.Dir("frames")); err == nil {
		t.Error("a slice wrote the stage's output folder")
	}
	// A re-run slice (a retried pod) redoes nothing.
	rec, err := RunSlice(ctx, p.Config, "frames", 1, n)
	if err != nil || rec.Extracted != 0 {
		t.Errorf("retried slice: %+v, %v", rec, err)
	}
	if got, err := CheckSlices(ctx, p.Config, "frames"); err != nil || got != n {
		t.Fatalf("CheckSlices = %d, %v", got, err)
	}
	res := p.Run(pipeline.Options{})
	if rep := report(res, "frames"); !strings.Contains(rep, "0 extracted, 3 cached") {
		t.Errorf("merge extracted frames again:\n%s", rep)
	}
	if rep := report(res, "ingest"); !strings.Contains(rep, "5 videos: 3 ok, 2 quarantined") {
		t.Errorf("merge ingest report:\n%s", rep)
	}
	pipelinetest.SameTrees(t, local.Workdir, p.Workdir, "ingest", "frames", "pack")
	if err := RemoveStaging(p.Workdir); err != nil {
		t.Fatal(err)
	}
	// The merged workdir is an ordinary one: a second run is up to date.
	if ran := pipelinetest.Ran(p.Run(pipeline.Options{})); len(ran) != 0 {
		t.Errorf("after the merge, %v ran again", ran)
	}
}
