package shards

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// Sentinel errors, wrapped with the shard's name.
var (
	// ErrChecksum: a shard's bytes differ from what index.json recorded.
	ErrChecksum = errors.New("shards: checksum mismatch")
	// ErrSize: a shard's size differs from index.json (truncated or grown).
	ErrSize = errors.New("shards: size mismatch")
)

// Dataset is an opened shards folder: verified, memory-mapped shards and
// the split. It is safe for concurrent reads. Close it after every Loader
// reading from it is closed.
type Dataset struct {
	// Dir is the shards folder; Index its index.json.
	Dir   string
	Index *Index
	// Metadata is the schema metadata of the shards (the same in all).
	Metadata map[string]string

	videos  map[string]*video
	unmaps  []func() error
	loaders atomic.Int32 // open Loaders: Close refuses to unmap under them
}

// video is one video of the dataset.
type video struct {
	VideoInfo
	shard  string
	frames []frameRef
}

// Open reads dir/index.json, memory-maps every shard, verifies its size and
// SHA-256 against the index (an error names the shard), parses it and checks
// that it holds exactly the videos and frames the index lists.
func Open(dir string) (*Dataset, error) {
	ix, err := ReadIndex(dir)
	if err != nil {
		return nil, err
	}
	d := &Dataset{Dir: dir, Index: ix, videos: map[string]*video{}}
	parsed := make([]*shardData, len(ix.Shards))
	maps := make([]func() error, len(ix.Shards))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, info := range ix.Shards {
		g.Go(func() error {
			data, unmap, err := mapFile(filepath.Join(dir, info.File))
			if err != nil {
				return fmt.Errorf("shards: open %s: %w", info.File, err)
			}
			maps[i] = unmap
			if err := checkBytes(info, data); err != nil {
				return err
			}
			s, err := readShard(info.File, data)
			if err != nil {
				return err
			}
			parsed[i] = s
			return nil
		})
	}
	err = g.Wait()
	for _, m := range maps {
		if m != nil {
			d.unmaps = append(d.unmaps, m)
		}
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	if err := d.link(parsed); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// checkBytes verifies a shard's size and SHA-256 against its index entry.
func checkBytes(info ShardInfo, data []byte) error {
	if int64(len(data)) != info.Bytes {
		return fmt.Errorf("%w: %s has %d bytes, index.json says %d", ErrSize, info.File, len(data), info.Bytes)
	}
	h := sha256.Sum256(data)
	if got := hex.EncodeToString(h[:]); got != info.SHA256 {
		return fmt.Errorf("%w: %s has sha256 %s, index.json says %s", ErrChecksum, info.File, got, info.SHA256)
	}
	return nil
}

// link checks the parsed shards against the index and builds the video map.
func (d *Dataset) link(parsed []*shardData) error {
	for i, s := range parsed {
		info := d.Index.Shards[i]
		if s.rows != info.Rows {
			return fmt.Errorf("shards: %s: %d rows, index.json says %d", info.File, s.rows, info.Rows)
		}
		if len(s.videos) != len(info.Videos) {
			return fmt.Errorf("shards: %s: %d videos, index.json says %d", info.File, len(s.videos), len(info.Videos))
		}
		for j, v := range s.videos {
			if v.id != info.Videos[j] {
				return fmt.Errorf("shards: %s: video %d is %s, index.json says %s", info.File, j, v.id, info.Videos[j])
			}
		}
		if d.Metadata == nil {
			d.Metadata = s.metadata
		}
	}
	for _, vi := range d.Index.Videos {
		s := parsed[vi.Shard]
		found := s.find(vi.ID)
		if found == nil {
			return fmt.Errorf("shards: video %s: not in %s", vi.ID, s.name)
		}
		if len(found.frames) != vi.Frames {
			return fmt.Errorf("shards: video %s in %s: %d frames, index.json says %d", vi.ID, s.name, len(found.frames), vi.Frames)
		}
		d.videos[vi.ID] = &video{VideoInfo: vi, shard: s.name, frames: found.frames}
	}
	return nil
}

// ErrLoadersOpen is returned by Close while Loaders still read the dataset.
var ErrLoadersOpen = errors.New("shards: dataset closed while loaders are open")

// Close unmaps the shards. No frame bytes obtained from the dataset may be
// used after. It fails, unmapping nothing, while a Loader on the dataset is
// open.
func (d *Dataset) Close() error {
	if n := d.loaders.Load(); n > 0 {
		return fmt.Errorf("%w (%d): close them first", ErrLoadersOpen, n)
	}
	var first error
	for _, u := range d.unmaps {
		if err := u(); err != nil && first == nil {
			first = err
		}
	}
	d.unmaps = nil
	d.videos = nil
	return first
}

// Videos returns the videos of a split (SplitTrain, SplitVal, or "" for
// all), sorted by ID.
func (d *Dataset) Videos(split string) []VideoInfo {
	var out []VideoInfo
	for _, v := range d.videos {
		if split == "" || v.Split == split {
			out = append(out, v.VideoInfo)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Verify checks a shards folder: every shard's size and SHA-256 against
// index.json, and its structure. It is the pack kind's Verify.
func Verify(dir string) error {
	d, err := Open(dir)
	if err != nil {
		return err
	}
	return d.Close()
}
