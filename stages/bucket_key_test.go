package stages

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/internal/videotest"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
)

// A bucket's listing is in ingest's cache key: adding, removing, renaming
// or rewriting an object makes ingest stale and its manifest follows the
// bucket; an unchanged bucket runs nothing. The server's clock is frozen,
// so every object has the same modification time and a rewrite of the same
// size differs only in its ETag.
func TestBucketListingInIngestKey(t *testing.T) {
	s3 := startS3(t, s3mem.WithTimeSource(gofakes3.FixedTimeSource(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))))
	src := videotest.Folder(t, 21)
	read := func(name string) []byte { return pipelinetest.ReadFile(t, filepath.Join(src, name)) }
	for _, name := range []string{"a.mp4", "b.mp4", "broken.mp4"} {
		s3.put(t, "videos/"+name, read(name))
	}
	p := pipelinetest.New(t, []pipeline.Kind{IngestKind()}, "stages:\n  ingest:\n    kind: ingest\n    params: {folder: \""+s3.loc("videos")+"\"}\n")
	manifest := func() map[string]ingest.Video {
		t.Helper()
		vs, err := ingest.ReadManifest(filepath.Join(p.Dir("ingest"), ingest.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]ingest.Video{}
		for _, v := range vs {
			out[filepath.Base(v.Path)] = v
		}
		return out
	}
	names := func() string {
		var out []string
		for n := range manifest() {
			out = append(out, n)
		}
		slices.Sort(out)
		return strings.Join(out, " ") // one string, for messages
	}
	expectRun := func(what string, want bool) {
		t.Helper()
		res := p.Run(pipeline.Options{})
		if ran := len(pipelinetest.Ran(res)) == 1; ran != want {
			t.Fatalf("%s: ingest ran %v, want %v", what, ran, want)
		}
	}
	expectRun("first run", true)
	if got := names(); got != "a.mp4 b.mp4 broken.mp4" {
		t.Fatalf("manifest lists %s", got)
	}
	expectRun("unchanged bucket", false)

	s3.put(t, "videos/c.mp4", read("c.mp4"))
	expectRun("object added", true)
	if got := names(); got != "a.mp4 b.mp4 broken.mp4 c.mp4" {
		t.Errorf("after adding c.mp4 the manifest lists %s", got)
	}

	s3.del(t, "videos/broken.mp4")
	expectRun("object removed", true)
	if got := names(); got != "a.mp4 b.mp4 c.mp4" {
		t.Errorf("after removing broken.mp4 the manifest lists %s", got)
	}

	s3.put(t, "videos/d.mp4", read("a.mp4"))
	s3.del(t, "videos/a.mp4")
	expectRun("object renamed", true)
	if got := names(); got != "b.mp4 c.mp4 d.mp4" {
		t.Errorf("after renaming a.mp4 to d.mp4 the manifest lists %s", got)
	}

	// Rewritten: c.mp4 gets other bytes of the same size (its last 64),
	// at the same modification time.
	before := manifest()["c.mp4"]
	other := slices.Clone(read("c.mp4"))
	copy(other[len(other)-64:], bytes.Repeat([]byte{0}, 64))
	s3.put(t, "videos/c.mp4", other)
	expectRun("object rewritten with the same size and time", true)
	after := manifest()["c.mp4"]
	if after.SHA256 == before.SHA256 || after.Size != before.Size {
		t.Errorf("after rewriting c.mp4: sha256 %s size %d, before %s size %d", after.SHA256, after.Size, before.SHA256, before.Size)
	}
	if got, err := os.ReadFile(after.Path); err != nil || !bytes.Equal(got, other) {
		t.Errorf("the fetched copy %s is not the rewritten object (%v)", after.Path, err)
	}
	expectRun("unchanged again", false)
}
