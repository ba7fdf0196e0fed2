package stages

import (
	"context"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/internal/blobstore"
)

// InputsFolder is the folder under a workdir that holds the videos fetched
// from a bucket (ingest's folder: s3://bucket/videos): ffprobe and ffmpeg
// read local files. An object is fetched again only when its size or
// modification time changed.
const InputsFolder = ".inputs"

// findVideos returns the videos of root, a folder or a bucket location;
// the videos of a bucket are fetched into the workdir first.
func findVideos(ctx context.Context, root, workdir string, include, exclude []string) ([]string, error) {
	if !blobstore.IsURL(root) {
		return ingest.Find(root, include, exclude)
	}
	dir, err := inputsDir(workdir, root)
	if err != nil {
		return nil, err
	}
	st, err := blobstore.Open(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	defer st.Close()
	objs, err := st.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	var out []string
	for _, o := range objs {
		if hiddenPath(o.Rel) || !ingest.Match(include, exclude, o.Rel) {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(o.Rel))
		if err := st.Fetch(ctx, o, dst); err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
		out = append(out, dst)
	}
	return out, nil
}

// inputsDir is where the objects of the bucket location u are fetched:
// <workdir>/.inputs/<scheme>/<bucket>/<folder> (the query is left out).
func inputsDir(workdir, u string) (string, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("ingest: folder %q: %w", u, err)
	}
	rel := path.Clean("/" + pu.Host + "/" + pu.Path)
	return filepath.Join(workdir, InputsFolder, pu.Scheme, filepath.FromSlash(rel)), nil
}

// hiddenPath reports whether a slash-separated path has a part starting
// with "." (Find skips those).
func hiddenPath(rel string) bool {
	for _, part := range strings.Split(rel, "/") {
		if strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}
