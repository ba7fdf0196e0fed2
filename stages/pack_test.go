package stages

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
	"github.com/timelapse-ml/pipeline/shards"
)

const packYAML = `stages:
  videos:
    kind: synth
    params: {count: 3, width: 64, height: 48, fps: 6, seconds: 7, seed: 3}
  ingest:
    kind: ingest
    needs: [videos]
  frames:
    kind: frames
    needs: [ingest]
    params: {size: 32}
  pack:
    kind: pack
    needs: [frames]
    params: {shard_mb: 1, val_fraction: 0.34}
`

// The pack stage on real extracted frames: shards that round-trip the
// frames byte for byte, a split, Verify catching a changed shard, and a
// second run that skips the stage.
func TestPackStage(t *testing.T) {
	kinds := []pipeline.Kind{SynthKind(), IngestKind(), FramesKind(), PackKind()}
	p := pipelinetest.Run(t, kinds, packYAML)
	fdir, sdir := p.Dir("frames"), p.Dir("pack")
	videos, err := frames.ReadIndex(fdir)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := shards.Open(sdir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if len(ds.Index.Videos) != 3 || len(ds.Index.Split.Val) == 0 || len(ds.Index.Split.Train) == 0 {
		t.Fatalf("index: %+v", ds.Index)
	}
	for _, v := range videos {
		for i := 1; i <= v.Frames; i++ {
			got, err := ds.FrameJPEG(v.ID, i)
			if err != nil {
				t.Fatal(err)
			}
			if want := pipelinetest.ReadFile(t, frames.FramePath(fdir, v.ID, i)); !bytes.Equal(got, want) {
				t.Fatalf("%s frame %d differs from the frames stage's file", v.ID, i)
			}
		}
	}
	if !strings.Contains(ds.Metadata[shards.MetaTools], "ffmpeg version") {
		t.Errorf("tools metadata %q lacks ffmpeg", ds.Metadata[shards.MetaTools])
	}
	res := p.Run(pipeline.Options{})
	if ran := pipelinetest.Ran(res); slices.Contains(ran, "pack") {
		t.Errorf("second run re-ran pack: %v", ran)
	}

	verify := PackKind().Verify
	if err := verify(context.Background(), sdir, nil); err != nil {
		t.Fatalf("verify intact: %v", err)
	}
	shard := filepath.Join(sdir, shards.ShardName(0))
	b := pipelinetest.ReadFile(t, shard)
	b[len(b)/3] ^= 1
	if err := os.WriteFile(shard, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verify(context.Background(), sdir, nil); err == nil || !strings.Contains(err.Error(), shards.ShardName(0)) {
		t.Errorf("verify after a flipped bit: %v", err)
	}
}

// Pack caches per shard: a forced re-run rewrites no shard, and a shard
// deleted by hand is the only one rebuilt.
func TestPackCachesPerShard(t *testing.T) {
	kinds := []pipeline.Kind{SynthKind(), IngestKind(), FramesKind(), PackKind()}
	src := strings.Replace(packYAML, "shard_mb: 1,", "shard_mb: 0.01,", 1)
	p := pipelinetest.Run(t, kinds, src)
	ix, err := shards.ReadIndex(p.Dir("pack"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Shards) < 2 {
		t.Fatalf("%d shards, want several", len(ix.Shards))
	}
	mtimes := func() map[string]time.Time {
		out := map[string]time.Time{}
		for _, s := range ix.Shards {
			fi, err := os.Stat(filepath.Join(p.Dir("pack"), s.File))
			if err != nil {
				t.Fatal(err)
			}
			out[s.File] = fi.ModTime()
		}
		return out
	}
	before := mtimes()
	time.Sleep(10 * time.Millisecond)
	if ran := pipelinetest.Ran(p.Run(pipeline.Options{Stages: []string{"pack"}})); !slices.Equal(ran, []string{"pack"}) {
		t.Fatalf("ran %v, want pack", ran)
	}
	if got := mtimes(); !maps.Equal(got, before) {
		t.Errorf("shards rewritten by a forced run: %v -> %v", before, got)
	}
	victim := filepath.Join(p.Dir("pack"), ix.Shards[1].File)
	os.Remove(victim)
	p.Run(pipeline.Options{})
	got := mtimes()
	for f, m := range before {
		if rebuilt := !got[f].Equal(m); rebuilt != (f == ix.Shards[1].File) {
			t.Errorf("%s: rebuilt %v", f, rebuilt)
		}
	}
	if err := shards.Verify(p.Dir("pack")); err != nil {
		t.Error(err)
	}
}
