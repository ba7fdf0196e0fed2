package pipeline

import (
	"path/filepath"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// TempPrefix starts the name of every temporary file or folder the engine
// and its atomic helpers create. Such names are never outputs: the engine
// ignores them when digesting outputs and removes them before a stage runs.
const TempPrefix = atomicfile.TempPrefix

// TempPath returns a fresh temporary path in the same folder as final (so a
// rename onto final is atomic).
func TempPath(final string) string { return atomicfile.TempPath(final) }

// IsTemp reports whether a file name (base name) is a temporary one.
func IsTemp(name string) bool { return atomicfile.IsTemp(name) }

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it onto path.
func WriteFileAtomic(path string, data []byte) error { return atomicfile.WriteFile(path, data) }

// AtomicFile is a buffered file written under a temporary name and renamed
// onto its final path by Commit (Abort discards it).
type AtomicFile = atomicfile.File

// CreateAtomic creates the parent folders of path and opens a temporary file
// beside it.
func CreateAtomic(path string) (*AtomicFile, error) { return atomicfile.Create(path) }

// Path returns the final path of rel (a slash path) under OutDir.
func (r *StageRun) Path(rel string) string { return filepath.Join(r.OutDir, filepath.FromSlash(rel)) }
