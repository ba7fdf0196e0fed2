package shards

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// Compression values.
const (
	CompressionNone = "none"
	CompressionZstd = "zstd"
)

// Output is where Pack writes: a *pipeline.StageRun, or DirOutput for plain
// use. Both write through temporary files renamed into place.
type Output interface {
	Create(rel string) (*atomicfile.File, error)
	WriteFile(rel string, data []byte) error
}

// ItemOutput is an Output that caches items (a *pipeline.StageRun): Pack
// then builds each shard as an item fingerprinted by its videos' frames
// index rows (the video id is a hash of the source video), the shared
// schema metadata and the compression, so only the shards whose videos
// changed are rewritten.
type ItemOutput interface {
	Output
	Item(ctx context.Context, rel, fingerprint string, build func(tmp string) error) (cached bool, err error)
	// Path returns the final path of rel.
	Path(rel string) string
}

// fileOutput writes the one file Create is asked for at a fixed path (an
// item's temporary path).
type fileOutput string

func (f fileOutput) Create(string) (*atomicfile.File, error) { return atomicfile.Create(string(f)) }
func (f fileOutput) WriteFile(_ string, data []byte) error {
	return atomicfile.WriteFile(string(f), data)
}

// DirOutput writes atomically under a folder.
type DirOutput string

// Create opens dir/rel through a temporary file.
func (d DirOutput) Create(rel string) (*atomicfile.File, error) {
	return atomicfile.Create(filepath.Join(string(d), rel))
}

// WriteFile atomically writes dir/rel.
func (d DirOutput) WriteFile(rel string, data []byte) error {
	return atomicfile.WriteFile(filepath.Join(string(d), rel), data)
}

// PackOptions configures Pack. Zero values are documented per field.
type PackOptions struct {
	// FramesDir is the frames stage's output folder.
	FramesDir string
	// Videos are the videos to pack; nil reads FramesDir's index. Videos
	// without frames are skipped (see PackResult); a damaged video whose
	// frames the frames stage kept (keep_damaged) is packed.
	Videos []frames.Video
	// ShardBytes is the target shard size; 0 means 256 MiB. A video larger
	// than the target gets a shard of its own.
	ShardBytes int64
	// ValFraction is the fraction of videos held out for validation.
	ValFraction float64
	// Seed picks the split (see AssignSplit).
	Seed int64
	// Compression is CompressionNone ("" too) or CompressionZstd.
	Compression string
	// Tools are tool versions recorded in the schema metadata (e.g.
	// "ffmpeg": "ffmpeg version 5.1.6-0+deb12u1"); arrow-go's version is added.
	Tools map[string]string
	// Workers is how many shards are written at once; 0 means GOMAXPROCS.
	Workers int
	// OnVideo, when set, is called after each video is written (progress).
	OnVideo func(id string)
}

// PackResult tells what Pack did.
type PackResult struct {
	Index *Index
	// Skipped lists the videos left out, with the reason.
	Skipped []string
	// InputBytes is the total size of the packed JPEG frames.
	InputBytes int64
}

// batchBytes bounds the JPEG bytes of one record batch (arrow-go refuses
// bodies over 256 MiB by default).
const batchBytes = 32 << 20

// plannedVideo is one video with its frame sizes.
type plannedVideo struct {
	frames.Video
	split string
	bytes int64
}

// packPlan is what Pack decides before it writes: the options with their
// defaults, each shard's videos and the schema metadata.
type packPlan struct {
	opt    PackOptions
	groups [][]plannedVideo
	md     map[string]string
	res    *PackResult
}

// planPack plans a pack: the usable videos sorted by ID, their split and
// frame sizes, the shards and the metadata.
func planPack(opt PackOptions) (*packPlan, error) {
	if opt.Compression == "" {
		opt.Compression = CompressionNone
	}
	if opt.Compression != CompressionNone && opt.Compression != CompressionZstd {
		return nil, fmt.Errorf("shards: unknown compression %q (none, zstd)", opt.Compression)
	}
	if opt.ShardBytes <= 0 {
		opt.ShardBytes = 256 << 20
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	videos := opt.Videos
	if videos == nil {
		var err error
		if videos, err = frames.ReadIndex(opt.FramesDir); err != nil {
			return nil, fmt.Errorf("shards: pack: %w", err)
		}
	}
	res := &PackResult{}
	var ok []frames.Video
	seen := map[string]bool{}
	for _, v := range videos {
		switch {
		case seen[v.ID]:
			return nil, fmt.Errorf("shards: pack: video %s listed twice", v.ID)
		case v.Frames < 1:
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: no frames (status %s)", v.ID, v.Status))
		default:
			ok = append(ok, v)
		}
		seen[v.ID] = true
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].ID < ok[j].ID })

	ids := make([]string, len(ok))
	for i, v := range ok {
		ids[i] = v.ID
	}
	split := AssignSplit(ids, opt.ValFraction, opt.Seed)

	planned := make([]plannedVideo, len(ok))
	for i, v := range ok {
		pv := plannedVideo{Video: v, split: split[v.ID]}
		for f := 1; f <= v.Frames; f++ {
			st, err := os.Stat(frames.FramePath(opt.FramesDir, v.ID, f))
			if err != nil {
				return nil, fmt.Errorf("shards: pack video %s frame %d: %w", v.ID, f, err)
			}
			pv.bytes += st.Size()
		}
		res.InputBytes += pv.bytes
		planned[i] = pv
	}
	groups := planShards(planned, opt.ShardBytes)

	md, err := packMetadata(opt, ok)
	if err != nil {
		return nil, err
	}
	return &packPlan{opt: opt, groups: groups, md: md, res: res}, nil
}

// Pack writes the shards of opt.Videos (or the frames index) and index.json
// to out. The same input gives byte-identical files.
func Pack(ctx context.Context, opt PackOptions, out Output) (*PackResult, error) {
	pl, err := planPack(opt)
	if err != nil {
		return nil, err
	}
	opt, groups, md, res := pl.opt, pl.groups, pl.md, pl.res
	ix := &Index{
		Format:      Format,
		Compression: opt.Compression,
		ValFraction: opt.ValFraction,
		Seed:        opt.Seed,
		Shards:      make([]ShardInfo, len(groups)),
		Videos:      []VideoInfo{},
		Split:       Split{Train: []string{}, Val: []string{}},
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opt.Workers)
	for si, group := range groups {
		g.Go(func() error {
			sw := shardWrite{
				file:        ShardName(si),
				framesDir:   opt.FramesDir,
				videos:      group,
				metadata:    md,
				compression: opt.Compression,
				onVideo:     opt.OnVideo,
			}
			items, ok := out.(ItemOutput)
			if !ok {
				info, err := writeShard(gctx, sw, out)
				ix.Shards[si] = info
				return err
			}
			var info ShardInfo
			cached, err := items.Item(gctx, sw.file, shardFingerprint(md, opt.Compression, group), func(tmp string) error {
				var err error
				info, err = writeShard(gctx, sw, fileOutput(tmp))
				return err
			})
			if err == nil && cached {
				info, err = cachedShardInfo(items.Path(sw.file), sw)
			}
			ix.Shards[si] = info
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for si, group := range groups {
		for _, v := range group {
			ix.Videos = append(ix.Videos, VideoInfo{ID: v.ID, Frames: v.Frames, Shard: si, Split: v.split})
			if v.split == SplitVal {
				ix.Split.Val = append(ix.Split.Val, v.ID)
			} else {
				ix.Split.Train = append(ix.Split.Train, v.ID)
			}
		}
	}
	data, err := encodeIndex(ix)
	if err != nil {
		return nil, err
	}
	if err := out.WriteFile(IndexFile, data); err != nil {
		return nil, fmt.Errorf("shards: write index: %w", err)
	}
	res.Index = ix
	return res, nil
}

// shardFingerprint is everything a shard's bytes depend on besides the
// code and tool versions (which the engine adds): the schema metadata, the
// compression and its videos' frames index rows, in order.
func shardFingerprint(md map[string]string, compression string, group []plannedVideo) string {
	rows := make([]frames.Video, len(group))
	for i, v := range group {
		rows[i] = v.Video
		rows[i].Source = "" // where the video was found does not change its frames
	}
	b, _ := json.Marshal(struct {
		Metadata    map[string]string
		Compression string
		Videos      []frames.Video
	}{md, compression, rows})
	return sha256Hex(b)
}

// cachedShardInfo returns the index entry of a shard an earlier run wrote.
func cachedShardInfo(path string, s shardWrite) (ShardInfo, error) {
	info := ShardInfo{File: s.file}
	data, err := os.ReadFile(path)
	if err != nil {
		return info, fmt.Errorf("shards: %w", err)
	}
	for _, v := range s.videos {
		info.Rows += v.Frames
		info.Videos = append(info.Videos, v.ID)
		if s.onVideo != nil {
			s.onVideo(v.ID)
		}
	}
	info.Bytes, info.SHA256 = int64(len(data)), sha256Hex(data)
	return info, nil
}

// ShardName returns the file name of shard i: shard-00000.arrow.
func ShardName(i int) string { return fmt.Sprintf("shard-%05d.arrow", i) }

// planShards groups videos (sorted by ID) into shards of about target bytes;
// a video is never split.
func planShards(videos []plannedVideo, target int64) [][]plannedVideo {
	var groups [][]plannedVideo
	var cur []plannedVideo
	var size int64
	for _, v := range videos {
		if len(cur) > 0 && size+v.bytes > target {
			groups = append(groups, cur)
			cur, size = nil, 0
		}
		cur = append(cur, v)
		size += v.bytes
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// recipe is the part of a frames index row that describes how frames were made.
type recipe struct {
	FPS       float64 `json:"fps"`
	TrimHead  float64 `json:"trim_head"`
	DropFirst bool    `json:"drop_first"`
	Size      int     `json:"size"`
}

// packMetadata returns the schema metadata shared by all shards.
func packMetadata(opt PackOptions, videos []frames.Video) (map[string]string, error) {
	// The distinct recipes of the videos, in a stable order.
	set := map[recipe]bool{}
	var recipes []recipe
	for _, v := range videos {
		r := recipe{v.FPS, v.TrimHead, v.DropFirst, v.Size}
		if !set[r] {
			set[r] = true
			recipes = append(recipes, r)
		}
	}
	sort.Slice(recipes, func(i, j int) bool {
		a, b := recipes[i], recipes[j]
		if a.FPS != b.FPS {
			return a.FPS < b.FPS
		}
		if a.TrimHead != b.TrimHead {
			return a.TrimHead < b.TrimHead
		}
		if a.DropFirst != b.DropFirst {
			return !a.DropFirst
		}
		return a.Size < b.Size
	})
	tools := map[string]string{"arrow-go": arrowVersion()}
	for k, v := range opt.Tools {
		tools[k] = v
	}
	pack := map[string]any{
		"compression":  opt.Compression,
		"shard_bytes":  opt.ShardBytes,
		"val_fraction": opt.ValFraction,
		"seed":         opt.Seed,
	}
	md := map[string]string{MetaFormat: Format}
	for k, v := range map[string]any{MetaPack: pack, MetaRecipe: recipes, MetaTools: tools} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("shards: metadata %s: %w", k, err)
		}
		md[k] = string(b)
	}
	return md, nil
}

// arrowVersion returns the arrow-go module version linked in, or "unknown".
func arrowVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/apache/arrow-go/v18" {
				return d.Version
			}
		}
	}
	return "unknown"
}

// jpegSize returns the width and height in a JPEG's header.
func jpegSize(data []byte) (int, int, error) {
	c, err := jpeg.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return 0, 0, err
	}
	return c.Width, c.Height, nil
}

// sha256Hex returns the hex SHA-256 of data.
func sha256Hex(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}
