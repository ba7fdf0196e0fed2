// Package shards owns the Arrow shard format, the contract between
// preprocessing and training: the writer that packs a frames folder into
// shard-NNNNN.arrow files (Arrow IPC file format, one row per frame, frames of
// a video in order and never split across shards) plus index.json (rows,
// videos, bytes and SHA-256 of every shard, and the train/val split by video);
// the reader that memory-maps verified shards; the clip-window sampler; and
// the prefetching Loader that decodes JPEG frames to float32 (B, T, C, H, W)
// tensors in [-1, 1], deterministically for a seed.
//
// Frame numbers are 1-based everywhere, as in the frames folder (000001.jpg is
// frame 1).
package shards
