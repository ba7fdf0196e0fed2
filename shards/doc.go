// Package shards owns the Arrow shard format, the contract between
// preprocessing and training:
//
//   - Pack: a frames folder into shard-NNNNN.arrow files (Arrow IPC file
//     format, one row per frame: video_id, frame, pts_seconds, width, height,
//     jpeg; a video's frames in order and never split across shards; record
//     batches of at most 32 MiB) plus index.json (rows, videos, bytes and
//     SHA-256 of every shard, and the train/val split by video). The same
//     input gives byte-identical files.
//   - Open: memory-maps the shards, verifies each one's size and SHA-256
//     against index.json (errors name the shard), checks the footer before
//     arrow-go parses it (arrow-go trusts its counts), and checks the rows
//     against the index. Verify does the same for `pipeline verify`.
//   - Windows and NewLoader: clip windows that never cross videos, and a
//     prefetching loader that decodes JPEG frames to float32 (B, T, C, H, W)
//     in [-1, 1], deterministic for a seed whatever the worker count, with
//     epoch or random sampling and a cache of decoded frames.
//
// Frame numbers are 1-based everywhere, as in the frames folder (000001.jpg is
// frame 1).
package shards
