// Package pipeline is the engine: it loads and validates a pipeline YAML file
// (every problem reported with file:line:col, output folders that would
// overlap the user's files refused), orders the stage graph, computes each
// stage's cache key (without the params marked NoKey), skips stages that are
// up to date, runs the stale ones with atomic outputs and per-item caching in
// folders it owns, resumes interrupted or continued ones, moves the previous
// outputs of KeepPrevious kinds aside, holds the workdir lock, re-checks
// recorded outputs (Verify) and reports progress. It knows nothing of video or
// models: stage kinds are values of type Kind, supplied by the stages package.
package pipeline
