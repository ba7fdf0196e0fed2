package shards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// IndexFile is the name of the index in a shards folder.
const IndexFile = "index.json"

// Split names.
const (
	SplitTrain = "train"
	SplitVal   = "val"
)

// Index is index.json: what a pack wrote.
type Index struct {
	Format      string  `json:"format"`
	Compression string  `json:"compression"`
	ValFraction float64 `json:"val_fraction"`
	Seed        int64   `json:"seed"`
	// Shards lists the shard files in order.
	Shards []ShardInfo `json:"shards"`
	// Videos lists every packed video, sorted by ID.
	Videos []VideoInfo `json:"videos"`
	// Split lists the video IDs of each split, sorted.
	Split Split `json:"split"`
}

// ShardInfo describes one shard file.
type ShardInfo struct {
	// File is the shard's file name, relative to the index.
	File string `json:"file"`
	// Rows is the number of frames in the shard.
	Rows int `json:"rows"`
	// Videos lists the IDs of the shard's videos, in row order.
	Videos []string `json:"videos"`
	// Bytes is the file size; SHA256 the hex digest of its contents.
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// VideoInfo describes one packed video.
type VideoInfo struct {
	ID     string `json:"id"`
	Frames int    `json:"frames"`
	// Shard is the index of the shard holding the video in Index.Shards.
	Shard int    `json:"shard"`
	Split string `json:"split"`
}

// Split is the train/validation split, by video.
type Split struct {
	Train []string `json:"train"`
	Val   []string `json:"val"`
}

// encodeIndex returns index.json's bytes (indented, trailing newline).
func encodeIndex(ix *Index) ([]byte, error) {
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("shards: encode index: %w", err)
	}
	return append(b, '\n'), nil
}

// ReadIndex reads and checks dir/index.json.
func ReadIndex(dir string) (*Index, error) {
	path := filepath.Join(dir, IndexFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("shards: read index: %w", err)
	}
	var ix Index
	if err := json.Unmarshal(b, &ix); err != nil {
		return nil, fmt.Errorf("shards: %s: %w", path, err)
	}
	if err := ix.check(); err != nil {
		return nil, fmt.Errorf("shards: %s: %w", path, err)
	}
	return &ix, nil
}

// check validates the index's internal consistency.
func (ix *Index) check() error {
	if ix.Format != Format {
		return fmt.Errorf("format %q, want %q", ix.Format, Format)
	}
	for i, s := range ix.Shards {
		if err := s.check(i); err != nil {
			return err
		}
	}
	seen := make(map[string]bool, len(ix.Videos))
	for _, v := range ix.Videos {
		if err := checkVideoEntry(seen, v.ID, v.Shard, v.Split, len(ix.Shards)); err != nil {
			return err
		}
	}
	return nil
}

// check validates shard entry i's file name and digest.
func (s ShardInfo) check(i int) error {
	if s.File == "" || filepath.Base(s.File) != s.File {
		return fmt.Errorf("shard %d: bad file name %q", i, s.File)
	}
	if len(s.SHA256) != 64 {
		return fmt.Errorf("shard %s: bad sha256 %q", s.File, s.SHA256)
	}
	return nil
}

// checkVideoEntry validates one video entry of an index (seen collects IDs).
func checkVideoEntry(seen map[string]bool, id string, shard int, split string, shards int) error {
	if seen[id] {
		return fmt.Errorf("video %s listed twice", id)
	}
	seen[id] = true
	if shard < 0 || shard >= shards {
		return fmt.Errorf("video %s: shard %d out of range", id, shard)
	}
	if split != SplitTrain && split != SplitVal {
		return fmt.Errorf("video %s: split %q", id, split)
	}
	return nil
}
