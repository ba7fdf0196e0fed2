package pipeline

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of every temporary file or folder the engine
// and its atomic helpers create. Such names are never outputs: the engine
// ignores them when digesting outputs and removes them before a stage runs.
const TempPrefix = ".tmp-"

// TempPath returns a fresh temporary path in the same folder as final (so a
// rename onto final is atomic).
func TempPath(final string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(filepath.Dir(final), TempPrefix+filepath.Base(final)+"-"+hex.EncodeToString(b[:]))
}

// IsTemp reports whether a file name (base name) is a temporary one.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it onto path.
func WriteFileAtomic(path string, data []byte) error {
	f, err := CreateAtomic(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// AtomicFile is a file written under a temporary name and renamed onto its
// final path by Commit.
type AtomicFile struct {
	*os.File
	final string
	done  bool
}

// CreateAtomic creates the parent folders of path and opens a temporary file
// beside it.
func CreateAtomic(path string) (*AtomicFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(TempPath(path), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &AtomicFile{File: f, final: path}, nil
}

// Commit syncs, closes and renames the file onto its final path.
func (f *AtomicFile) Commit() error {
	if f.done {
		return fmt.Errorf("commit %s: already closed", f.final)
	}
	f.done = true
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("sync %s: %w", f.final, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("close %s: %w", f.final, err)
	}
	if err := os.Rename(tmp, f.final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename into %s: %w", f.final, err)
	}
	return nil
}

// Abort closes and removes the temporary file. It is a no-op after Commit.
func (f *AtomicFile) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// path resolves rel under the stage's OutDir.
func (r *StageRun) path(rel string) string { return filepath.Join(r.OutDir, filepath.FromSlash(rel)) }
