package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockError says another run holds the workdir.
type LockError struct {
	Workdir string
	PID     int
}

func (e *LockError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("workdir %s is in use by another pipeline run (PID %d); wait for it to finish or stop it", e.Workdir, e.PID)
	}
	return fmt.Sprintf("workdir %s is in use by another pipeline run", e.Workdir)
}

// lockWorkdir takes an exclusive lock on the workdir (flock, so a killed
// holder releases it) and writes our PID into the lock file.
func lockWorkdir(workdir string) (unlock func(), err error) {
	dir := stateDir(workdir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("workdir %s: %w", workdir, err)
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		f.Close()
		return nil, &LockError{Workdir: workdir, PID: pid}
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = f.Truncate(0)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
