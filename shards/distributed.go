package shards

import (
	"context"
	"fmt"
	"sort"

	"github.com/timelapse-ml/pipeline/frames"
)

// ShardJob is one shard of a pack as plain data, for a writer that runs
// elsewhere (a Beam worker after a group by shard number): PlanShards
// makes them, Write writes the shard Pack would write, byte for byte.
type ShardJob struct {
	// Shard is the shard's number; its file is ShardName(Shard).
	Shard       int               `json:"shard"`
	Videos      []JobVideo        `json:"videos"`
	Metadata    map[string]string `json:"metadata"`
	Compression string            `json:"compression"`
}

// JobVideo is one video of a ShardJob: its frames index row, its split and
// the bytes of its frames.
type JobVideo struct {
	Video frames.Video `json:"video"`
	Split string       `json:"split"`
	Bytes int64        `json:"bytes"`
}

// PlanShards plans a pack as Pack does (opt.FramesDir must hold the
// frames) and returns each shard's job, in shard order, and what Pack would
// report as skipped.
func PlanShards(opt PackOptions) ([]ShardJob, *PackResult, error) {
	pl, err := planPack(opt)
	if err != nil {
		return nil, nil, err
	}
	jobs := make([]ShardJob, len(pl.groups))
	for si, g := range pl.groups {
		j := ShardJob{Shard: si, Metadata: pl.md, Compression: pl.opt.Compression}
		for _, v := range g {
			j.Videos = append(j.Videos, JobVideo{Video: v.Video, Split: v.split, Bytes: v.bytes})
		}
		jobs[si] = j
	}
	return jobs, pl.res, nil
}

// File is the shard's file name.
func (j ShardJob) File() string { return ShardName(j.Shard) }

// group returns the job's videos sorted by ID (the order Pack writes).
func (j ShardJob) group() []plannedVideo {
	g := make([]plannedVideo, len(j.Videos))
	for i, v := range j.Videos {
		g[i] = plannedVideo{Video: v.Video, split: v.Split, bytes: v.Bytes}
	}
	sort.Slice(g, func(a, b int) bool { return g[a].ID < g[b].ID })
	return g
}

// Fingerprint is the shard's item fingerprint, as Pack gives it to an
// ItemOutput.
func (j ShardJob) Fingerprint() string {
	return shardFingerprint(j.Metadata, j.Compression, j.group())
}

// Write writes the shard from the frames under framesDir to path (through
// a temporary file) and returns its index entry.
func (j ShardJob) Write(ctx context.Context, framesDir, path string) (ShardInfo, error) {
	if len(j.Videos) == 0 {
		return ShardInfo{}, fmt.Errorf("shards: shard %d has no videos", j.Shard)
	}
	return writeShard(ctx, shardWrite{
		file:        j.File(),
		framesDir:   framesDir,
		videos:      j.group(),
		metadata:    j.Metadata,
		compression: j.Compression,
	}, fileOutput(path))
}
