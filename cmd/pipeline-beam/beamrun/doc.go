// Package beamrun runs the per-video preprocessing of a config (ingest's
// probes, the frames of each video, and the shards of pack) as one Apache
// Beam pipeline: on prism in-process, or on any portable runner (Flink,
// Spark, a standalone prism job server) with an external worker pool.
//
// Elements are file addresses and small JSON rows, never frame bytes (prism
// refuses gRPC messages over 4 MB). Each worker does its video's work with
// the same code as the local engine (stages.VideoWork: ingest.Inspect,
// frames.Batch, the shards writer) and leaves the result in the workdir's
// staging folder with the fingerprint the stage gives it; shards are
// written by a step of their own after a group by shard number. The
// engine's run of the config that follows adopts every staged item, so the
// manifest, frames, index and shards equal a local run's byte for byte and
// the engine's state (cache keys, digests, verify) is the same.
//
// Workers therefore share the workdir (one machine, or a shared volume).
package beamrun
