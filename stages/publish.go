package stages

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/internal/blobstore"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/shards"
)

// PublishedFile is the record a publish stage writes: every object it put
// in the bucket, with its size and SHA-256, in upload order.
const PublishedFile = "published.json"

// Published is published.json.
type Published struct {
	URL     string                `json:"url"`
	Objects []blobstore.Published `json:"objects"`
}

// indexNames are the files a stage's readers open first: they are
// uploaded last, so a reader that finds the index finds everything it lists.
var indexNames = []string{shards.IndexFile, ingest.ManifestFile, frames.IndexFile}

// PublishKind copies the output folder of the stage it needs to a bucket.
func PublishKind() pipeline.Kind {
	return pipeline.Kind{
		Name:    "publish",
		Version: "1",
		Doc: "Copies the output of the stage it needs (pack's shards, say) to a bucket location through gocloud.dev/blob " +
			"(s3://bucket/folder?region=..., gs://, file://, mem://). Each object is uploaded whole with its SHA-256 in " +
			"its metadata and read back; the index (index.json, manifest.jsonl, index.jsonl) goes last, so a reader " +
			"that finds it finds every file it lists. Objects already there with the same digest are not uploaded " +
			"again. Writes published.json with every object's size and digest; verify re-checks the bucket.",
		Params: []pipeline.ParamSpec{
			{Name: "url", Type: pipeline.String, Required: true, Doc: "bucket location to copy to"},
		},
		Run:    runPublish,
		Verify: verifyPublish,
	}
}

func runPublish(ctx context.Context, r *pipeline.StageRun) error {
	if len(r.Needs) != 1 {
		return fmt.Errorf("publish: needs exactly one stage (needs: %v)", r.Needs)
	}
	in := r.Input(r.Needs[0])
	rels, err := publishOrder(in)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	u := r.Params.String("url")
	st, err := blobstore.Open(ctx, u)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer st.Close()
	prog := r.Progress("files", len(rels))
	defer prog.Done()
	objs, err := st.Publish(ctx, in, rels)
	prog.Add(len(objs))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	data, err := json.MarshalIndent(Published{URL: u, Objects: objs}, "", "  ")
	if err != nil {
		return err
	}
	if err := r.WriteFile(PublishedFile, append(data, '\n')); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	var bytes int64
	skipped := 0
	for _, o := range objs {
		bytes += o.Bytes
		if o.Skipped {
			skipped++
		}
	}
	r.Report(fmt.Sprintf("%d objects, %.1f MiB to %s (%d already there)", len(objs), float64(bytes)/(1<<20), redact(u), skipped))
	return nil
}

// publishOrder lists the files of dir (slash-separated, hidden and
// temporary ones left out), sorted, with the index files last.
func publishOrder(dir string) ([]string, error) {
	var files, last []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if slices.Contains(indexNames, rel) {
			last = append(last, rel)
		} else {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	slices.Sort(last)
	return append(files, last...), nil
}

// verifyPublish checks every recorded object in the bucket.
func verifyPublish(ctx context.Context, dir string, p pipeline.Params) error {
	data, err := os.ReadFile(filepath.Join(dir, PublishedFile))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	var rec Published
	if err := json.Unmarshal(data, &rec); err != nil {
		return fmt.Errorf("publish: %s: %w", PublishedFile, err)
	}
	st, err := blobstore.Open(ctx, rec.URL)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer st.Close()
	for _, o := range rec.Objects {
		if err := st.Check(ctx, o); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nil
}

// redact drops a bucket URL's query (endpoints, credentials profiles) for
// reports.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}
