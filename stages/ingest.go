package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/internal/blobstore"
	"github.com/timelapse-ml/pipeline/pipeline"
)

// IngestKind finds the videos of a folder (or of the stage it needs),
// probes and hashes them, quarantines unusable ones with a reason, and
// writes manifest.jsonl (package ingest). Each file's inspection is a cached
// item keyed by its path, size and modification time, so a re-run only
// probes new or changed files.
func IngestKind() pipeline.Kind {
	return pipeline.Kind{
		Name:    "ingest",
		Version: "1",
		Doc: "Finds the videos in a folder (recursive, include/exclude globs) or in the output of the stage it " +
			"needs, probes each with ffprobe, hashes its content, and writes manifest.jsonl: one row per file " +
			"with its id (first 16 hex digits of its SHA-256), duration, size, rotation, frame rate, codec and " +
			"status. Unusable files are quarantined with a reason (empty_file, probe_failed, no_video_stream, " +
			"unsupported, truncated, too_short, duplicate) and the tool's message; they never stop the run " +
			"unless --strict.",
		Params: []pipeline.ParamSpec{
			{Name: "folder", Type: pipeline.Path, Doc: "folder of videos, searched recursively; unset: the output of the single needed stage"},
			{Name: "include", Type: pipeline.StringList, Default: append([]string(nil), ingest.DefaultInclude...),
				Doc: "globs a file must match (base name, or a path relative to the folder when it holds '/'; '**' spans folders; case-insensitive)"},
			{Name: "exclude", Type: pipeline.StringList, Default: []string{}, Doc: "globs of files to skip"},
			{Name: "trim_head", Type: pipeline.Duration, Default: 2 * time.Second, Doc: "the frames stage's trim_head (decides too_short)"},
			{Name: "trim_tail", Type: pipeline.Duration, Default: 2 * time.Second, Doc: "the frames stage's trim_tail (decides too_short)"},
			{Name: "fps", Type: pipeline.Float, Default: 5.0, Min: pipeline.Bound(0.01), Max: pipeline.Bound(1000), Doc: "the frames stage's fps (decides too_short)"},
			{Name: "drop_first", Type: pipeline.Bool, Default: true, Doc: "the frames stage's drop_first (decides too_short)"},
			{Name: "workers", NoKey: true, Type: pipeline.Int, Default: 0, Min: pipeline.Bound(0), Max: pipeline.Bound(1024), Doc: "files inspected at once (0: CPU count)"},
		},
		Tools: []pipeline.Tool{
			{Name: "ffprobe", VersionArgs: []string{"-version"}},
			{Name: "ffmpeg", VersionArgs: []string{"-version"}},
		},
		ListURL: blobstore.ListingDigest,
		Run:     runIngest,
		Verify:  verifyIngest,
	}
}

func runIngest(ctx context.Context, r *pipeline.StageRun) error {
	p := r.Params
	root := ""
	if p.Has("folder") && p.String("folder") != "" {
		root = p.String("folder")
	} else if len(r.Needs) == 1 {
		root = r.Input(r.Needs[0])
	} else {
		return fmt.Errorf("ingest: set folder, or need exactly one stage whose output holds the videos (needs: %v)", r.Needs)
	}
	paths, err := findVideos(ctx, root, r.Workdir, p.Strings("include"), p.Strings("exclude"))
	if err != nil {
		return err
	}
	opts := ingest.Options{
		TrimHead:  p.Duration("trim_head").Seconds(),
		TrimTail:  p.Duration("trim_tail").Seconds(),
		FPS:       p.Float("fps"),
		DropFirst: p.Bool("drop_first"),
	}
	tools, err := ingest.ToolVersions(ctx, opts)
	if err != nil {
		return err
	}

	prog := r.Progress("videos", len(paths))
	defer prog.Done()
	var probed, cached atomic.Int64
	item := adoptingItem(r, IngestKind())
	inspect := func(ctx context.Context, path string) (ingest.Video, error) {
		fi, err := os.Stat(path)
		if err != nil { // vanished since Find: Inspect quarantines it
			return ingest.Inspect(ctx, path, opts)
		}
		rel, fp := probeItem(path, fi, opts, tools)
		v, hit, err := inspectItem(ctx, item, r.OutDir, rel, fp, path, opts, "cached probe")
		if hit {
			cached.Add(1)
		} else if err == nil {
			probed.Add(1)
		}
		return v, err
	}
	videos, err := ingest.InspectAll(ctx, paths, p.Int("workers"), inspect, func(ingest.Video) { prog.Add(1) })
	if err != nil {
		return err
	}
	data, err := ingest.EncodeManifest(videos)
	if err != nil {
		return err
	}
	if err := r.WriteFile(ingest.ManifestFile, data); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}

	var bad []string
	ok := 0
	for _, v := range videos {
		if v.OK() {
			ok++
			continue
		}
		rel, err := filepath.Rel(root, v.Path)
		if err != nil {
			rel = v.Path
		}
		line := fmt.Sprintf("quarantined %s: %s (%s)", rel, v.Reason, v.Message)
		bad = append(bad, line)
		r.Log.Warn("quarantined", slog.String("file", rel), slog.String("reason", string(v.Reason)), slog.String("message", v.Message))
	}
	r.Report(fmt.Sprintf("%d videos: %d ok, %d quarantined", len(videos), ok, len(bad)))
	r.Report(bad...)
	r.Log.Info("ingest done", slog.Int("videos", len(videos)), slog.Int("ok", ok), slog.Int("quarantined", len(bad)),
		slog.Int64("probed", probed.Load()), slog.Int64("cached", cached.Load()))
	if r.Strict && len(bad) > 0 {
		return fmt.Errorf("ingest: --strict: %d quarantined file(s), first: %s", len(bad), bad[0])
	}
	return nil
}

// inspectItem is ingest.Inspect of path kept as the item rel (fingerprint
// fp) of dir through item (the stage's cache or a staging's build): a
// fresh probe is written there as JSON, a kept one (hit) is read back;
// what names the kept probe in errors. hit is false when item fails.
func inspectItem(ctx context.Context, item func(ctx context.Context, rel, fp string, build func(tmp string) error) (bool, error),
	dir, rel, fp, path string, opts ingest.Options, what string) (v ingest.Video, hit bool, err error) {
	hit, err = item(ctx, rel, fp, func(tmp string) error {
		var err error
		if v, err = ingest.Inspect(ctx, path, opts); err != nil {
			return err
		}
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return os.WriteFile(tmp, data, 0o644)
	})
	if err != nil {
		return v, false, fmt.Errorf("ingest %s: %w", path, err)
	}
	if hit {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err == nil {
			err = json.Unmarshal(data, &v)
		}
		if err != nil {
			return v, true, fmt.Errorf("ingest %s: %s: %w", path, what, err)
		}
	}
	return v, hit, nil
}

// probeItem returns the path (relative to the stage's output) and the
// fingerprint of the cached probe of the file at path: its path, size and
// modification time (and, for a video fetched from a bucket, its object's
// MD5), the options and the tools' versions.
func probeItem(path string, fi os.FileInfo, opts ingest.Options, tools string) (rel, fp string) {
	b, _ := json.Marshal(struct {
		Path    string
		Size    int64
		ModTime int64
		Object  string `json:",omitempty"`
		Opts    ingest.Options
		Tools   string
	}{path, fi.Size(), fi.ModTime().UnixNano(), blobstore.FetchedVersion(path), opts, tools})
	sum := sha256.Sum256([]byte(path))
	return "probes/" + hex.EncodeToString(sum[:8]) + ".json", string(b)
}
