package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// Previous outputs of a KeepPrevious stage (a trainer's checkpoints) are
// moved aside, never deleted, when the stage runs afresh.

func previousDir(workdir string) string { return filepath.Join(stateDir(workdir), "previous") }

// moveAside moves a stage's output folder, when it holds any file, to
// .pipeline/previous/<stage>-<UTC time>/ with the stage's state and item
// journal beside it, and returns the new path ("" when there was nothing to
// keep). The next run starts in a new, empty folder.
func moveAside(workdir, stage string) (string, error) {
	out := filepath.Join(workdir, stage)
	files, err := scanTree(out, nil)
	if err != nil || len(files) == 0 {
		return "", err
	}
	if msg, err := adoptProblem(workdir, stage); err != nil {
		return "", err
	} else if msg != "" {
		return "", errors.New(msg)
	}
	if err := os.MkdirAll(previousDir(workdir), 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(previousDir(workdir), stage+"-"+time.Now().UTC().Format("20060102T150405Z"))
	dst := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := atomicfile.Rename(out, dst); err != nil {
		return "", err
	}
	// The state and the item journal describe the moved files: keep them
	// with them (under dot names, so they read as the engine's, not outputs).
	for src, name := range map[string]string{
		statePath(workdir, stage): ".pipeline-state.json",
		itemsPath(workdir, stage): ".pipeline-items.jsonl",
		ownerPath(workdir, stage): "",
	} {
		var err error
		if name == "" {
			err = os.Remove(src)
		} else {
			err = os.Rename(src, filepath.Join(dst, name))
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return dst, err
		}
	}
	return dst, atomicfile.SyncDir(stateDir(workdir))
}

// previousOf lists the folders a stage's earlier outputs were moved to,
// oldest first.
func previousOf(workdir, stage string) ([]string, error) {
	ents, err := os.ReadDir(previousDir(workdir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), stage+"-")
		if ok && e.IsDir() && len(rest) >= len("20060102T150405Z") && rest[0] >= '0' && rest[0] <= '9' {
			out = append(out, filepath.Join(previousDir(workdir), e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}
