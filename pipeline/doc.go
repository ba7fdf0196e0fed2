// Package pipeline is the engine: it loads and validates a pipeline YAML file
// (every problem reported with file:line:col), orders the stage graph, computes
// each stage's cache key, skips stages that are up to date, runs the stale ones
// with atomic outputs and per-item caching, holds the workdir lock, and reports
// progress. It knows nothing of video or models: stage kinds are values of type
// Kind, supplied by the stages package.
package pipeline
