package frames

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// Version is the code version of the extraction; it enters every item
// fingerprint. Bump it when the bytes written for the same input change.
const Version = "1"

// RowFile is the name of the file in each video's folder that holds its
// index row, so a cached video's row is known without extracting it again.
const RowFile = "video.json"

// ItemFunc has the signature of pipeline.StageRun.Item: build the item rel
// (relative to the output folder) into tmp unless a recorded item with the
// same fingerprint is intact.
type ItemFunc func(ctx context.Context, rel, fingerprint string, build func(tmp string) error) (cached bool, err error)

// Batch extracts the frames of many videos into one folder, each video in
// its own folder named by its ID.
type Batch struct {
	Params Params
	// KeepDamaged keeps the frames of a damaged video (its row says
	// damaged); otherwise its folder holds no frames and its row has
	// Frames 0.
	KeepDamaged bool
	// Workers is how many videos are extracted at once (0: the CPU count).
	// Each runs two ffmpeg processes.
	Workers int
	// FFmpegVersion enters the fingerprints (see FFmpegVersion).
	FFmpegVersion string
	// Item builds one video's folder. Nil builds it directly: a temporary
	// folder beside the final one, renamed into place (no caching).
	Item ItemFunc
	// Done, when set, is called after each video (from several goroutines).
	Done func(v Video, cached bool)
}

// Stats counts what a Batch run did.
type Stats struct {
	Extracted, Cached, Damaged int
	// Frames is the number of frames written by this run (not cached).
	Frames  int
	Elapsed time.Duration
}

// FramesPerSecond is the output frame rate of the run (0 if nothing ran).
func (s Stats) FramesPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Frames) / s.Elapsed.Seconds()
}

// Fingerprint is everything the frames of src depend on: its content hash,
// the params that shape the bytes, the ffmpeg version and this code's
// version.
func (b Batch) Fingerprint(src Source) string {
	return fmt.Sprintf("frames/%s sha256=%s range=%s %s keep_damaged=%t ffmpeg=%q",
		Version, src.SHA256, src.ColorRange, b.Params.Key(), b.KeepDamaged, b.FFmpegVersion)
}

// Run extracts every source into dir/<ID> and returns the index rows in
// source order. A damaged video is not an error; a cancelled ctx, a missing
// ffmpeg or a file system failure is.
func (b Batch) Run(ctx context.Context, dir string, srcs []Source) ([]Video, Stats, error) {
	if err := b.Params.Validate(); err != nil {
		return nil, Stats{}, err
	}
	seen := map[string]bool{}
	for _, s := range srcs {
		if s.ID == "" || strings.ContainsAny(s.ID, `/\`) || s.ID[0] == '.' {
			return nil, Stats{}, fmt.Errorf("frames: bad video id %q for %s", s.ID, s.Path)
		}
		if seen[s.ID] {
			return nil, Stats{}, fmt.Errorf("frames: video id %s appears twice (%s)", s.ID, s.Path)
		}
		seen[s.ID] = true
	}
	workers := b.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	p := b.Params
	if p.DecodeThreads == 0 {
		p.DecodeThreads = max(1, runtime.NumCPU()/max(1, min(workers, len(srcs))))
	}
	item := b.Item
	if item == nil {
		item = buildInPlace(dir)
	}

	start := time.Now()
	rows := make([]Video, len(srcs))
	var extracted, cachedN, damaged, nframes atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	// Costliest first (longest-processing-time order): the last videos to
	// finish are short ones, so no core idles long at the end.
	order := make([]int, len(srcs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return srcs[order[a]].cost() > srcs[order[b]].cost() })
	for _, i := range order {
		src := srcs[i]
		g.Go(func() error {
			var row Video
			cached, err := item(gctx, src.ID, b.Fingerprint(src), func(tmp string) error {
				var err error
				row, err = b.extractOne(gctx, src, p, tmp)
				return err
			})
			if err != nil {
				return fmt.Errorf("frames %s (%s): %w", src.ID, filepath.Base(src.Path), err)
			}
			if cached {
				if row, err = readRow(filepath.Join(dir, src.ID, RowFile)); err != nil {
					return fmt.Errorf("frames %s: %w", src.ID, err)
				}
				row.Source = src.Path // the same content may have moved
				cachedN.Add(1)
			} else {
				extracted.Add(1)
				nframes.Add(int64(row.Frames))
			}
			if row.Status == StatusDamaged {
				damaged.Add(1)
			}
			rows[i] = row
			if b.Done != nil {
				b.Done(row, cached)
			}
			return nil
		})
	}
	err := g.Wait()
	st := Stats{Extracted: int(extracted.Load()), Cached: int(cachedN.Load()), Damaged: int(damaged.Load()),
		Frames: int(nframes.Load()), Elapsed: time.Since(start)}
	if err != nil {
		return nil, st, err
	}
	return rows, st, nil
}

// extractOne extracts src into tmp and writes its row file there.
func (b Batch) extractOne(ctx context.Context, src Source, p Params, tmp string) (Video, error) {
	res, err := Extract(ctx, src, p, tmp)
	if err != nil {
		return Video{}, err
	}
	row := Video{ID: src.ID, Source: src.Path, Frames: res.Frames, FPS: p.FPS, TrimHead: p.TrimHead,
		DropFirst: p.DropFirst, Size: p.Size, Status: StatusOK, FFmpeg: b.FFmpegVersion}
	if res.Damaged {
		row.Status, row.Message = StatusDamaged, res.Message
		if !b.KeepDamaged {
			for i := 1; i <= res.Frames; i++ {
				if err := os.Remove(filepath.Join(tmp, FrameName(i))); err != nil {
					return Video{}, err
				}
			}
			row.Frames = 0
		}
	}
	data, err := json.Marshal(row)
	if err != nil {
		return Video{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, RowFile), append(data, '\n'), 0o644); err != nil {
		return Video{}, err
	}
	return row, nil
}

func readRow(path string) (Video, error) {
	var v Video
	data, err := os.ReadFile(path)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// buildInPlace is the ItemFunc without a cache: build into a temporary
// folder beside dir/rel and rename it into place.
func buildInPlace(dir string) ItemFunc {
	return func(ctx context.Context, rel, _ string, build func(tmp string) error) (bool, error) {
		final := filepath.Join(dir, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return false, err
		}
		tmp := atomicfile.TempPath(final)
		defer os.RemoveAll(tmp)
		if err := build(tmp); err != nil {
			return false, err
		}
		if err := os.RemoveAll(final); err != nil {
			return false, err
		}
		return false, atomicfile.Publish(tmp, final)
	}
}
