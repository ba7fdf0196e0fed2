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
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
	"github.com/timelapse-ml/pipeline/internal/blobstore"
	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/shards"
)

// ShardCacheEnv, when set, names the folder of the shard cache (shared by
// workdirs on one machine, say); the default is <workdir>/.cache/shards.
const ShardCacheEnv = "PIPELINE_SHARD_CACHE"

// shardsParam is the param of the stages that read shards (pretrain, train,
// train_sd, latents) naming shards made elsewhere instead of a needed
// stage's output.
func shardsParam(kind string) pipeline.ParamSpec {
	return pipeline.ParamSpec{Name: "shards", Type: pipeline.Path,
		Doc: "the " + kind + " shards to read instead of a needed " + kind + " stage's: a folder, or a bucket location " +
			"(s3://bucket/folder?region=..., what a publish stage wrote) whose index.json and shards are fetched into " +
			"the shard cache (<workdir>/.cache/shards, or $" + ShardCacheEnv + "), each under its SHA-256 and " +
			"verified against the index; a later run fetches only what the cache lacks"}
}

// shardsInput returns the local folder of the shards the stage reads: the
// output of its one needed stage of kind, or its shards param (a folder,
// or a bucket location fetched through the shard cache); "" when it has
// neither.
func shardsInput(ctx context.Context, r *pipeline.StageRun, kind string) (string, error) {
	need, err := needOfKind(r, kind)
	if err != nil {
		return "", err
	}
	param := ""
	if r.Params.Has("shards") {
		param = r.Params.String("shards")
	}
	switch {
	case param != "" && need != "":
		return "", fmt.Errorf("%s: both a needed %s stage and the shards param name shards; keep one", r.Kind, kind)
	case param == "":
		return need, nil
	case !blobstore.IsURL(param):
		return param, nil
	}
	return fetchShards(ctx, r, param)
}

// shardCacheDir is the shard cache of a workdir.
func shardCacheDir(workdir string) string {
	if d := os.Getenv(ShardCacheEnv); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	return filepath.Join(workdir, ".cache", "shards")
}

// fetchShards makes a local shards folder of the bucket location u: its
// index.json, and each shard it lists fetched into the cache (by SHA-256,
// verified) and linked under the shard's name, in
// <cache>/index/<SHA-256 of index.json>/, which the loaders open as any
// shards folder (and which re-checks every shard's digest).
func fetchShards(ctx context.Context, r *pipeline.StageRun, u string) (string, error) {
	st, err := blobstore.Open(ctx, u)
	if err != nil {
		return "", fmt.Errorf("%s: shards: %w", r.Kind, err)
	}
	defer st.Close()
	raw, err := st.ReadAll(ctx, shards.IndexFile)
	if err != nil {
		return "", fmt.Errorf("%s: shards: %w", r.Kind, err)
	}
	list, err := shardList(raw)
	if err != nil {
		return "", fmt.Errorf("%s: shards: %s: %w", r.Kind, st.Name(shards.IndexFile), err)
	}
	cache := blobstore.Cache{Dir: shardCacheDir(r.Workdir)}
	sum := sha256.Sum256(raw)
	view := filepath.Join(cache.Dir, "index", hex.EncodeToString(sum[:]))
	if _, err := os.Stat(filepath.Join(view, shards.IndexFile)); err == nil {
		r.Log.Info("shards cached", slog.String("url", st.Name("")), slog.Int("shards", len(list)), slog.String("dir", view))
		r.Report(fmt.Sprintf("shards of %s: all %d in the cache (%s)", st.Name(""), len(list), view))
		return view, nil
	}

	prog := r.Progress("shards", len(list))
	defer prog.Done()
	paths := make([]string, len(list))
	fetched := make([]int64, len(list))
	var g errgroup.Group
	g.SetLimit(4)
	for i, s := range list {
		g.Go(func() error {
			var err error
			paths[i], fetched[i], err = cache.Fetch(ctx, st, s.File, s.Bytes, s.SHA256)
			prog.Add(1)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return "", fmt.Errorf("%s: shards: %w", r.Kind, err)
	}
	if err := linkView(view, list, paths, raw); err != nil {
		return "", fmt.Errorf("%s: shards: %w", r.Kind, err)
	}
	var bytes int64
	got := 0
	for _, n := range fetched {
		bytes += n
		if n > 0 {
			got++
		}
	}
	r.Log.Info("shards fetched", slog.String("url", st.Name("")), slog.Int("shards", len(list)), slog.Int("fetched", got),
		slog.Int64("bytes", bytes), slog.String("dir", view))
	r.Report(fmt.Sprintf("shards of %s: %d fetched (%.1f MiB), %d from the cache (%s)",
		st.Name(""), got, float64(bytes)/(1<<20), len(list)-got, view))
	return view, nil
}

// shardList returns the shards an index.json lists (a pack's or a latents
// stage's: both name each shard's file, size and SHA-256).
func shardList(raw []byte) ([]shards.ShardInfo, error) {
	var ix struct {
		Shards []shards.ShardInfo `json:"shards"`
	}
	if err := json.Unmarshal(raw, &ix); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, s := range ix.Shards {
		if s.File == "" || filepath.Base(s.File) != s.File || strings.HasPrefix(s.File, ".") || s.File == shards.IndexFile || seen[s.File] {
			return nil, fmt.Errorf("bad or repeated shard file name %q", s.File)
		}
		seen[s.File] = true
	}
	return ix.Shards, nil
}

// linkView writes the folder view: a hard link (a symbolic one across file
// systems) to each cached shard under its name, then index.json, built
// under a temporary name and renamed into place.
func linkView(view string, list []shards.ShardInfo, paths []string, index []byte) error {
	if err := os.MkdirAll(filepath.Dir(view), 0o755); err != nil {
		return err
	}
	tmp := atomicfile.TempPath(view)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // ours; gone after the rename
	for i, s := range list {
		dst := filepath.Join(tmp, s.File)
		if err := os.Link(paths[i], dst); err != nil {
			if err := os.Symlink(paths[i], dst); err != nil {
				return err
			}
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, shards.IndexFile), index); err != nil {
		return err
	}
	if err := atomicfile.Rename(tmp, view); err != nil {
		if _, serr := os.Stat(filepath.Join(view, shards.IndexFile)); serr == nil {
			return nil // another run made the same view
		}
		return err
	}
	return nil
}
