// Package atomicfile writes files under a temporary name beside their final
// path and renames them into place when complete, so a killed run never
// leaves a half-written file under a final name. Temporary names start with
// TempPrefix, which the pipeline engine ignores in outputs and cleans up. The
// engine and the trainer share it.
package atomicfile

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts every temporary file or folder name.
const TempPrefix = ".tmp-"

// TempPath returns a fresh temporary path in the same folder as final, so a
// rename onto final is atomic.
func TempPath(final string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(filepath.Dir(final), TempPrefix+filepath.Base(final)+"-"+hex.EncodeToString(b[:]))
}

// IsTemp reports whether a base name is a temporary one.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// File is a buffered file written under a temporary name.
type File struct {
	*bufio.Writer
	f     *os.File
	final string
	done  bool
}

// Create creates path's parent folders and opens a temporary file beside it.
func Create(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	tmp := TempPath(path)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{Writer: bufio.NewWriterSize(f, 1<<20), f: f, final: path}, nil
}

// Commit flushes, syncs and closes the file and renames it onto its path.
func (a *File) Commit() error {
	if a.done {
		return fmt.Errorf("commit %s: already closed", a.final)
	}
	a.done = true
	tmp := a.f.Name()
	err := a.Flush()
	if err == nil {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = Rename(tmp, a.final)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", a.final, err)
	}
	return nil
}

// Abort discards the temporary file; a no-op after Commit.
func (a *File) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.f.Close()
	os.Remove(a.f.Name())
}

// WriteFile atomically writes data to path.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// Rename renames oldpath onto newpath and syncs newpath's folder, so the
// rename itself survives a crash (a file's own fsync does not cover the
// directory entry that names it).
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(newpath))
}

// SyncDir fsyncs a folder, making the creations, renames and removals of
// entries in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}

// Publish makes a finished temporary file durable and renames it onto final:
// it fsyncs the file (a program like ffmpeg wrote it), renames it and syncs
// the folder. For a temporary folder only the rename and the folder entry are
// synced, not each file in it (whoever reuses such a folder checks its files).
func Publish(tmp, final string) error {
	if fi, err := os.Stat(tmp); err == nil && fi.Mode().IsRegular() {
		f, err := os.OpenFile(tmp, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", tmp, err)
		}
	}
	return Rename(tmp, final)
}
