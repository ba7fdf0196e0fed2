package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Finding is one problem `pipeline verify` found: a recorded output that is
// missing or whose content no longer matches its recorded SHA-256, or a
// failed check of the stage's kind (File is then "").
type Finding struct {
	Stage, File, Problem string
}

func (f Finding) String() string {
	if f.File == "" {
		return fmt.Sprintf("%s: %s", f.Stage, f.Problem)
	}
	return fmt.Sprintf("%s: %s: %s", f.Stage, f.File, f.Problem)
}

// VerifyReport is what Verify checked and found.
type VerifyReport struct {
	Stages   []string // stages with a finished run that were checked
	Files    int      // recorded outputs re-hashed
	Findings []Finding
	// Interrupted lists stages whose last run did not finish: their partial
	// outputs are not recorded, so there is nothing to check (not a finding).
	Interrupted []string
}

// Verify re-hashes every recorded output of every finished stage against
// the state (reading each file in full, whatever its size and modification
// time say) and runs the kind's own check (Kind.Verify) on its folder.
func (e *Engine) Verify(ctx context.Context) (*VerifyReport, error) {
	rep := &VerifyReport{}
	for _, st := range e.cfg.Order() {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		old, err := loadState(e.cfg.Workdir, st.Name)
		if err != nil {
			return rep, err
		}
		if old == nil {
			continue
		}
		if old.Status != statusDone {
			rep.Interrupted = append(rep.Interrupted, st.Name)
			continue
		}
		rep.Stages = append(rep.Stages, st.Name)
		dir := filepath.Join(e.cfg.Workdir, st.Name)
		names := make([]string, 0, len(old.Outputs))
		for n := range old.Outputs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, rel := range names {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			rep.Files++
			if p := checkFile(filepath.Join(dir, filepath.FromSlash(rel)), old.Outputs[rel]); p != "" {
				rep.Findings = append(rep.Findings, Finding{Stage: st.Name, File: filepath.Join(st.Name, filepath.FromSlash(rel)), Problem: p})
			}
		}
		if st.Kind.Verify != nil {
			if err := st.Kind.Verify(ctx, dir, st.Params); err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				rep.Findings = append(rep.Findings, Finding{Stage: st.Name, Problem: "check of kind " + st.Kind.Name + " failed: " + err.Error()})
			}
		}
	}
	return rep, nil
}

// checkFile re-hashes one recorded file; "" means it matches.
func checkFile(path string, want FileRecord) string {
	got, err := hashFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "missing"
	case err != nil:
		return "unreadable: " + err.Error()
	case got != want.SHA256:
		return fmt.Sprintf("content changed (sha256 %.12s…, recorded %.12s…)", got, want.SHA256)
	}
	return ""
}
