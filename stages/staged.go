package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
	"github.com/timelapse-ml/pipeline/pipeline"
)

// StagingFolder is the folder under a workdir where work done outside the
// engine (a slice of a Kubernetes Indexed Job, a Beam worker) leaves
// finished items: <workdir>/.staged/<stage>/<item>, each with a marker
// <item>.staged holding its fingerprint, written last. The engine's next run
// of the same config adopts a staged item (renames it into place) when its
// marker matches the fingerprint the stage computes, instead of building it
// again; an item whose marker is missing or differs is built as usual.
const StagingFolder = ".staged"

// markerSuffix ends the name of a staged item's marker.
const markerSuffix = ".staged"

// StagingDir returns the staging folder of stage under workdir.
func StagingDir(workdir, stage string) string {
	return filepath.Join(workdir, StagingFolder, stage)
}

// stagedMark is the marker content of an item of kind version with
// fingerprint fp.
func stagedMark(kind pipeline.Kind, fp string) string {
	return kind.Name + "/" + kind.Version + "\x00" + fp
}

// staging is one stage's staging folder.
type staging struct {
	dir  string
	mark func(fp string) string
}

func newStaging(workdir, stage string, kind pipeline.Kind) staging {
	return staging{dir: StagingDir(workdir, stage), mark: func(fp string) string { return stagedMark(kind, fp) }}
}

// has reports whether rel is staged with fingerprint fp.
func (s staging) has(rel, fp string) bool {
	b, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(rel)) + markerSuffix)
	return err == nil && string(b) == s.mark(fp)
}

// adopt moves the staged rel to dst when it is staged with fingerprint fp
// and reports whether it did. A staged item on another file system is not
// adopted (the caller builds it).
func (s staging) adopt(rel, fp, dst string) (bool, error) {
	if !s.has(rel, fp) {
		return false, nil
	}
	src := filepath.Join(s.dir, filepath.FromSlash(rel))
	if err := os.Rename(src, dst); err != nil {
		return false, nil
	}
	if err := os.Remove(src + markerSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return true, fmt.Errorf("staged %s: %w", rel, err)
	}
	return true, nil
}

// build builds rel into the staging folder unless it is staged with fp
// already (then it reports cached). build gets a temporary path beside the
// final one; the item is renamed into place and its marker written last, so
// a killed worker leaves no marker for a half-built item. Two workers that
// build the same item (the same content under two names) both succeed: the
// second finds the first's marker.
func (s staging) build(ctx context.Context, rel, fp string, build func(tmp string) error) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if s.has(rel, fp) {
		return true, nil
	}
	final := filepath.Join(s.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return false, err
	}
	tmp := atomicfile.TempPath(final)
	defer os.RemoveAll(tmp)
	if err := build(tmp); err != nil {
		return false, err
	}
	if _, err := os.Lstat(tmp); err != nil {
		return false, fmt.Errorf("staged %s: build wrote nothing", rel)
	}
	// A stale item of other params (its marker differs or is missing) was
	// made by an earlier worker of this tool: replace it.
	marker := final + markerSuffix
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := os.RemoveAll(final); err != nil {
		return false, err
	}
	if err := atomicfile.Publish(tmp, final); err != nil {
		if s.has(rel, fp) { // another worker published the same item first
			return false, nil
		}
		return false, fmt.Errorf("staged %s: %w", rel, err)
	}
	if err := atomicfile.WriteFile(marker, []byte(s.mark(fp))); err != nil {
		return false, fmt.Errorf("staged %s: %w", rel, err)
	}
	return false, nil
}

// adoptingItem wraps a stage's r.Item: an item not cached in the stage's
// output is first looked for in the staging folder. An adopted item reports
// cached, so the caller reads its result from the output folder as for a
// cache hit.
func adoptingItem(r *pipeline.StageRun, kind pipeline.Kind) func(ctx context.Context, rel, fp string, build func(tmp string) error) (bool, error) {
	s := newStaging(r.Workdir, r.Name, kind)
	if _, err := os.Stat(s.dir); err != nil {
		return r.Item // nothing staged: the plain engine path
	}
	return func(ctx context.Context, rel, fp string, build func(tmp string) error) (bool, error) {
		adopted := false
		cached, err := r.Item(ctx, rel, fp, func(tmp string) error {
			ok, err := s.adopt(rel, fp, tmp)
			if err != nil || ok {
				adopted = ok
				return err
			}
			return build(tmp)
		})
		return cached || (adopted && err == nil), err
	}
}

// adoptingOutput is a stage's output for shards.Pack whose items are
// first looked for in the staging folder.
type adoptingOutput struct {
	*pipeline.StageRun
	item func(ctx context.Context, rel, fp string, build func(tmp string) error) (bool, error)
}

// Item builds or adopts one shard.
func (o adoptingOutput) Item(ctx context.Context, rel, fp string, build func(tmp string) error) (bool, error) {
	return o.item(ctx, rel, fp, build)
}
