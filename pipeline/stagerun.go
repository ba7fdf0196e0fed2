package pipeline

import (
	"context"
	"log/slog"
)

// StageRun is what a kind's Run function gets: the stage's resolved params,
// where its inputs are, where to write, and the engine services (per-item
// cache, progress, report lines).
//
// Outputs and atomicity: OutDir is the stage's final output folder,
// <workdir>/<stage name>. A stage never writes a final path directly; it uses
// WriteFile / Create (temporary file renamed into place on commit) or Item
// (a temporary file or folder renamed into place when complete), so a killed
// run never leaves a half-written output under its final name.
//
// What OutDir holds when Run starts: the items recorded by earlier runs (Item
// decides whether each is still valid) and, when Resume is true, everything an
// interrupted earlier attempt with the same cache key left there (a trainer's
// checkpoint, say). Otherwise the engine has removed all other files.
type StageRun struct {
	// Name is the stage's name in the config; Kind its kind.
	Name, Kind string
	// Params are the resolved params (defaults applied, paths absolute).
	Params Params
	// OutDir is the stage's output folder (exists when Run starts).
	OutDir string
	// Workdir is the pipeline's work folder; ConfigDir the config file's folder.
	Workdir, ConfigDir string
	// Needs lists the needed stages in config order.
	Needs []string
	// Resume is true when an earlier attempt with the same cache key was
	// interrupted and left its files in OutDir.
	Resume bool
	// Forced is true when the user asked for this stage to re-run (--stage or --force).
	Forced bool
	// Strict is the --strict flag: kinds that set bad items aside (quarantine)
	// fail instead.
	Strict bool
	// Tools maps each tool the kind declares to its version line (as in
	// the cache key), e.g. Tools["ffmpeg"].
	Tools map[string]string
	// Log is the stage's logger (it carries the stage name).
	Log *slog.Logger

	inputs map[string]string
	eng    *runEnv
}

// Input returns the output folder of the needed stage name. It returns ""
// for a stage that is not among Needs.
func (r *StageRun) Input(need string) string { return r.inputs[need] }

// InputKind returns the kind of the needed stage name ("" if not needed).
func (r *StageRun) InputKind(need string) string { return r.eng.kindOf(need) }

// Report adds lines to the stage's end-of-run summary; they are kept in the
// state and shown by `pipeline status` (e.g. "quarantined a.mp4: too_short").
// Reports of a run replace those of the previous run.
func (r *StageRun) Report(lines ...string) { r.eng.report(r.Name, lines...) }

// Progress starts a progress display for total units of work (0 if
// unknown), e.g. r.Progress("videos", 16). Call Add as work completes and Done at the end.
func (r *StageRun) Progress(unit string, total int) *Progress {
	return r.eng.progress(r.Name, unit, total)
}

// Item builds one item of a stage that handles many (a video's frames, a
// shard) unless an earlier run already built it with the same fingerprint
// and its files are unchanged (the kind's version and its tools' versions are
// part of every item's fingerprint). rel is the item's path relative to OutDir (a
// file or a folder); fingerprint is everything the item's content depends on
// (e.g. the source's content hash and the params that matter). build gets a
// temporary path beside the final one, which it creates as a file or folder;
// when build returns nil the engine renames it to rel and records it.
// Item is safe for concurrent use. Items recorded earlier that a successful
// run does not visit are deleted at the end of the run.
func (r *StageRun) Item(ctx context.Context, rel, fingerprint string, build func(tmp string) error) (cached bool, err error) {
	return r.eng.item(ctx, r, rel, fingerprint, build)
}

// WriteFile atomically writes data to rel under OutDir.
func (r *StageRun) WriteFile(rel string, data []byte) error {
	return WriteFileAtomic(r.Path(rel), data)
}

// Create opens rel under OutDir for writing through a temporary file; call
// Commit to rename it into place, or Abort to discard it.
func (r *StageRun) Create(rel string) (*AtomicFile, error) { return CreateAtomic(r.Path(rel)) }
