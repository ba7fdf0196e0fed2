package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/internal/atomicfile"
	"github.com/timelapse-ml/pipeline/pipeline"
)

// SliceRecord is what one slice of an Indexed Job did; it is written to
// <workdir>/.staged/slices/<stage>-<index>-of-<count>.json when the slice
// finishes, and the merge checks the records cover every video once.
type SliceRecord struct {
	Stage string   `json:"stage"`
	Index int      `json:"index"`
	Count int      `json:"count"`
	Paths []string `json:"paths"`
	// OK, Quarantined and Extracted count the slice's videos.
	OK, Quarantined, Extracted, Cached int
}

// SliceOf returns the paths of slice index of count: every count-th path of
// the sorted listing, starting at index. Slices 0..count-1 cover every path
// exactly once and are about equal in size.
func SliceOf(paths []string, index, count int) []string {
	var out []string
	for i := index; i < len(paths); i += count {
		out = append(out, paths[i])
	}
	return out
}

func sliceRecordPath(workdir, stage string, index, count int) string {
	return filepath.Join(workdir, StagingFolder, "slices", fmt.Sprintf("%s-%05d-of-%05d.json", stage, index, count))
}

// RunSlice runs slice index of count of the frames stage named stage (or of
// the frames stage that needs the ingest stage named stage): it probes its
// videos and extracts the frames of the usable ones into the staging folder,
// then records the slice. It takes no lock and writes nothing outside the
// staging folder, so the slices of one config may run at once (Kubernetes
// Indexed Job pods sharing the workdir). A killed slice resumes: finished
// items are kept.
func RunSlice(ctx context.Context, cfg *pipeline.Config, stage string, index, count int) (*SliceRecord, error) {
	if count < 1 || index < 0 || index >= count {
		return nil, &pipeline.UsageError{Msg: fmt.Sprintf("--shard %d --num-shards %d: want 0 <= shard < num-shards", index, count)}
	}
	w, err := NewVideoWork(ctx, cfg, stage)
	if err != nil {
		return nil, err
	}
	all, err := w.List(ctx)
	if err != nil {
		return nil, err
	}
	rec := &SliceRecord{Stage: w.FramesStage, Index: index, Count: count, Paths: SliceOf(all, index, count)}
	if rec.Paths == nil {
		rec.Paths = []string{}
	}
	vs, err := ingest.InspectAll(ctx, rec.Paths, w.Workers, w.Inspect, nil)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if v.OK() {
			rec.OK++
		} else {
			rec.Quarantined++
		}
	}
	_, st, err := w.Extract(ctx, vs)
	if err != nil {
		return nil, err
	}
	rec.Extracted, rec.Cached = st.Extracted, st.Cached
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(sliceRecordPath(w.Workdir, w.FramesStage, index, count), append(data, '\n')); err != nil {
		return nil, fmt.Errorf("slice %d of %d: %w", index, count, err)
	}
	return rec, nil
}

// CheckSlices checks, before a merge, that the recorded slices of the
// frames stage named stage (or needing the ingest stage named stage) are
// all there (0..count-1 of one count) and together list every video ingest
// finds now exactly once. It returns the slice count.
func CheckSlices(ctx context.Context, cfg *pipeline.Config, stage string) (int, error) {
	fs, err := framesStageOf(cfg, stage)
	if err != nil {
		return 0, err
	}
	dir := filepath.Join(cfg.Workdir, StagingFolder, "slices")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("merge %s: no slice has finished (nothing in %s)", fs.Name, dir)
	}
	if err != nil {
		return 0, err
	}
	count := -1
	seen := map[string]int{}
	have := map[int]bool{}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), fs.Name+"-") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return 0, err
		}
		var r SliceRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return 0, fmt.Errorf("merge: %s: %w", e.Name(), err)
		}
		if r.Stage != fs.Name {
			continue
		}
		if count >= 0 && r.Count != count {
			return 0, fmt.Errorf("merge %s: slices of two counts (%d and %d) in %s: remove the stale ones", fs.Name, count, r.Count, dir)
		}
		count = r.Count
		have[r.Index] = true
		for _, p := range r.Paths {
			if j, dup := seen[p]; dup {
				return 0, fmt.Errorf("merge %s: %s is in slices %d and %d", fs.Name, p, j, r.Index)
			}
			seen[p] = r.Index
		}
	}
	if count < 0 {
		return 0, fmt.Errorf("merge %s: no slice has finished (nothing in %s)", fs.Name, dir)
	}
	var missing []string
	for i := range count {
		if !have[i] {
			missing = append(missing, fmt.Sprint(i))
		}
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("merge %s: slice(s) %s of %d have not finished", fs.Name, strings.Join(missing, ", "), count)
	}
	is := cfg.Stage(fs.Needs[0])
	root, err := ingestRoot(cfg, is)
	if err != nil {
		return 0, err
	}
	all, err := findVideos(ctx, root, cfg.Workdir, is.Params.Strings("include"), is.Params.Strings("exclude"))
	if err != nil {
		return 0, err
	}
	for _, p := range all {
		if _, ok := seen[p]; !ok {
			return 0, fmt.Errorf("merge %s: %s is in no slice (added after the slices listed the folder?): run the slices again", fs.Name, p)
		}
		delete(seen, p)
	}
	if len(seen) > 0 {
		var gone []string
		for p := range seen {
			gone = append(gone, p)
		}
		slices.Sort(gone)
		return 0, fmt.Errorf("merge %s: %s was sliced but is gone", fs.Name, gone[0])
	}
	return count, nil
}

// RemoveStaging deletes the workdir's staging folder after a successful
// merge: everything in it was made by slices or Beam workers of this tool,
// and what the engine adopted has moved out already.
func RemoveStaging(workdir string) error {
	return os.RemoveAll(filepath.Join(workdir, StagingFolder))
}
