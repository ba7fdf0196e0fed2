package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/internal/blobstore"
	"github.com/timelapse-ml/pipeline/internal/videotest"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/pipeline/pipelinetest"
)

// fakeS3 starts an in-process S3 server on 127.0.0.1 with bucket b and
// returns a function making s3:// locations of folders in it.
func fakeS3(t *testing.T) func(folder string) string { return startS3(t).loc }

// Videos read from and shards written to an S3 server: the shards in the
// bucket equal a local run's byte for byte, the index went up last, every
// object's digest is recorded and verify catches a changed object.
func TestS3InputsAndPublishedShards(t *testing.T) {
	ctx := context.Background()
	loc := fakeS3(t)
	src := videotest.Folder(t, 11)
	in, err := blobstore.Open(ctx, loc("videos"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	names, err := publishOrder(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Publish(ctx, src, names); err != nil {
		t.Fatal(err)
	}

	kinds := []pipeline.Kind{IngestKind(), FramesKind(), PackKind(), PublishKind()}
	local := pipelinetest.Run(t, kinds, videotest.Config(src))
	cfg := strings.Replace(videotest.Config(loc("videos")), "stages:\n", "stages:\n  upload:\n    kind: publish\n    needs: [pack]\n    params: {url: \""+loc("out/shards")+"\"}\n", 1)
	p := pipelinetest.New(t, kinds, cfg)
	res := p.Run(pipeline.Options{})
	if rep := report(res, "ingest"); !strings.Contains(rep, "5 videos: 3 ok, 2 quarantined") {
		t.Errorf("ingest report:\n%s", rep)
	}
	pipelinetest.SameTrees(t, local.Workdir, p.Workdir, "pack")

	var rec Published
	if err := json.Unmarshal(pipelinetest.ReadFile(t, filepath.Join(p.Dir("upload"), PublishedFile)), &rec); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Objects); n < 2 || rec.Objects[n-1].Rel != "index.json" {
		t.Fatalf("published %+v: want the shards, then index.json", rec.Objects)
	}
	out, err := blobstore.Open(ctx, loc("out/shards"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for _, o := range rec.Objects {
		got, err := out.ReadAll(ctx, o.Rel)
		if err != nil {
			t.Fatal(err)
		}
		if want := pipelinetest.ReadFile(t, filepath.Join(local.Dir("pack"), o.Rel)); !bytes.Equal(got, want) {
			t.Errorf("%s in the bucket differs from the local run's", o.Rel)
		}
	}
	if err := verifyPublish(ctx, p.Dir("upload"), nil); err != nil {
		t.Errorf("verify: %v", err)
	}
	// An object changed behind the tool's back: verify names it.
	tampered := filepath.Join(t.TempDir(), "index.json")
	if err := os.WriteFile(tampered, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Publish(ctx, filepath.Dir(tampered), []string{"index.json"}); err != nil {
		t.Fatal(err)
	}
	if err := verifyPublish(ctx, p.Dir("upload"), nil); err == nil || !strings.Contains(err.Error(), "index.json") {
		t.Errorf("verify after a change: %v", err)
	}
	// A second run is up to date and fetches nothing new.
	if ran := pipelinetest.Ran(p.Run(pipeline.Options{})); len(ran) != 0 {
		t.Errorf("second run ran %v", ran)
	}
}
