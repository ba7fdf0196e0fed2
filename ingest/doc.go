// Package ingest owns finding source videos (a folder walked recursively
// with include/exclude globs), probing each with ffprobe under the caller's
// context, hashing its content, setting aside unusable ones with a
// machine-readable reason (quarantine), and the manifest.jsonl that lists
// every video found.
package ingest
