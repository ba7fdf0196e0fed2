package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The engine empties a stage's output folder of everything it did not
// record, so it must own that folder: it writes only in folders it created
// (marked under .pipeline/owned/) and refuses configs whose output folders
// overlap the user's files.

// ownerMark is the engine's record that it created a stage's output folder.
type ownerMark struct {
	Folder  string    `json:"folder"`
	Created time.Time `json:"created"`
}

func ownerPath(workdir, stage string) string {
	return filepath.Join(stateDir(workdir), "owned", stage+".json")
}

// loadOwner returns the stage folder's mark; a stage with a recorded state
// but no mark (made before marks existed) counts as owned since the zero time.
func loadOwner(workdir, stage string) (*ownerMark, error) {
	b, err := os.ReadFile(ownerPath(workdir, stage))
	if err == nil {
		var m ownerMark
		if json.Unmarshal(b, &m) == nil {
			return &m, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("owner mark of %s: %w", stage, err)
	}
	if _, err := os.Stat(statePath(workdir, stage)); err == nil {
		return &ownerMark{Folder: stage}, nil
	}
	return nil, nil
}

// pathOverlap says how output folder out and path p overlap ("" for not at all).
func pathOverlap(out, p string) string {
	switch {
	case out == p:
		return "is the same path as"
	case within(p, out):
		return "contains"
	case within(out, p):
		return "lies inside"
	}
	return ""
}

// within reports whether path lies strictly inside dir.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// realPath resolves symlinks of the longest existing prefix of p, so a
// link into the user's files compares as the files it points to.
func realPath(p string) string {
	p = filepath.Clean(p)
	var rest []string
	for q := p; ; q = filepath.Dir(q) {
		if r, err := filepath.EvalSymlinks(q); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		if filepath.Dir(q) == q {
			return p
		}
		rest = append([]string{filepath.Base(q)}, rest...)
	}
}

// overlapProblems lists every stage output folder that equals, contains or
// lies inside a Path param (or an external input) of any stage, or that is or
// contains the config file's folder.
func overlapProblems(cfg *Config) []Problem {
	type guarded struct {
		path, what string
		line, col  int
	}
	var paths []guarded
	if !strings.HasPrefix(cfg.File, "<embedded>") {
		paths = append(paths, guarded{path: cfg.Dir, what: "the config file's folder"})
	}
	for _, st := range cfg.Stages {
		if st.Kind == nil {
			continue
		}
		for _, sp := range st.Kind.Params {
			if sp.Type != Path || !st.Params.Has(sp.Name) || st.Params.String(sp.Name) == "" {
				continue
			}
			pos := st.paramPos[sp.Name]
			paths = append(paths, guarded{path: st.Params.String(sp.Name),
				what: fmt.Sprintf("param %s of stage %q", sp.Name, st.Name), line: pos[0], col: pos[1]})
		}
		if st.Kind.ExternalInputs != nil {
			for _, p := range st.Kind.ExternalInputs(st.Params) {
				if p != "" {
					paths = append(paths, guarded{path: p, what: fmt.Sprintf("an input of stage %q", st.Name), line: st.Line, col: st.Col})
				}
			}
		}
	}
	var probs []Problem
	for _, st := range cfg.Stages {
		out := filepath.Join(cfg.Workdir, st.Name)
		for _, g := range paths {
			how := pathOverlap(out, filepath.Clean(g.path))
			if how == "" {
				how = pathOverlap(realPath(out), realPath(g.path))
			}
			if how == "" || (g.what == "the config file's folder" && how == "lies inside") {
				continue
			}
			line, col := g.line, g.col
			if line == 0 {
				line, col = st.Line, st.Col
			}
			probs = append(probs, Problem{File: cfg.File, Line: line, Col: col, stage: st.Name, Msg: fmt.Sprintf(
				"stage %q: its output folder %s %s %s (%s); the engine empties its output folders, "+
					"so they must not overlap your files: set workdir to a folder of its own (e.g. workdir: work) or rename the stage",
				st.Name, out, how, g.what, g.path)})
		}
	}
	return probs
}

// adoptProblem says why the engine must not use a stage's output folder: it
// exists, is not the engine's, and is not an empty folder. "" means it may.
func adoptProblem(workdir, stage string) (string, error) {
	out := filepath.Join(workdir, stage)
	fi, err := os.Lstat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Sprintf("output folder %s is a symbolic link, not a folder the engine made", out), nil
	}
	if !fi.IsDir() {
		return fmt.Sprintf("output folder %s exists and is a file, not a folder the engine made", out), nil
	}
	m, err := loadOwner(workdir, stage)
	if err != nil || m != nil {
		return "", err
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return "", err
	}
	if len(ents) == 0 {
		return "", nil
	}
	return fmt.Sprintf("output folder %s already exists with %d entries (e.g. %s) that the engine did not make; "+
		"it empties its output folders, so it will not adopt this one", out, len(ents), ents[0].Name()), nil
}

// adoptProblems checks every stage's output folder (adoptProblem).
func adoptProblems(cfg *Config, skip map[string]bool) []Problem {
	var probs []Problem
	for _, st := range cfg.Stages {
		if skip[st.Name] {
			continue
		}
		msg, err := adoptProblem(cfg.Workdir, st.Name)
		if err != nil {
			msg = fmt.Sprintf("output folder: %v", err)
		}
		if msg != "" {
			probs = append(probs, Problem{File: cfg.File, Line: st.Line, Col: st.Col, Msg: fmt.Sprintf(
				"stage %q: %s: set workdir to a folder of its own (e.g. workdir: work), rename the stage, or move that folder away",
				st.Name, msg)})
		}
	}
	return probs
}

// claimOutDir creates (or re-checks) a stage's output folder and marks it as
// the engine's. It returns the mark.
func claimOutDir(workdir, stage string) (*ownerMark, error) {
	msg, err := adoptProblem(workdir, stage)
	if err != nil {
		return nil, err
	}
	if msg != "" {
		return nil, &ConfigError{Problems: []Problem{{File: workdir, Msg: fmt.Sprintf("stage %q: %s", stage, msg)}}}
	}
	out := filepath.Join(workdir, stage)
	m, err := loadOwner(workdir, stage)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(out)
	if m != nil && statErr == nil {
		if _, err := os.Stat(ownerPath(workdir, stage)); err == nil {
			return m, nil
		}
	}
	if statErr != nil {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return nil, err
		}
	}
	if m == nil || statErr != nil {
		m = &ownerMark{Folder: stage, Created: time.Now().UTC()}
	}
	b, _ := json.Marshal(m)
	if err := WriteFileAtomic(ownerPath(workdir, stage), b); err != nil {
		return nil, fmt.Errorf("marking %s: %w", out, err)
	}
	return m, nil
}

// olderFile returns the first regular file under path (a file or a folder)
// last modified before t (less a second of clock slack), or "".
func olderFile(path string, t time.Time) string {
	limit := t.Add(-time.Second)
	found := ""
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return fs.SkipAll
		}
		if IsTemp(d.Name()) && d.IsDir() {
			return fs.SkipDir
		}
		if !d.Type().IsRegular() || IsTemp(d.Name()) {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().Before(limit) {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	return found
}
