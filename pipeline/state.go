package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Stage statuses recorded in the state.
const (
	statusRunning = "running"
	statusDone    = "done"
)

// KeyParts is everything that went into a stage's cache key (`--explain`).
type KeyParts struct {
	Kind     string            `json:"kind"`
	Version  string            `json:"version"`
	Params   map[string]any    `json:"params"`
	Inputs   map[string]string `json:"inputs,omitempty"`   // needed stage -> its output digest
	Tools    map[string]string `json:"tools,omitempty"`    // tool -> version line
	External map[string]string `json:"external,omitempty"` // path -> listing digest
}

// stageState is the engine's record of a stage, in .pipeline/stages/NAME.json.
type stageState struct {
	Status   string                `json:"status"`
	Key      string                `json:"key"`
	Parts    KeyParts              `json:"parts"`
	Outputs  map[string]FileRecord `json:"outputs,omitempty"`
	Digest   string                `json:"digest,omitempty"`
	Reports  []string              `json:"reports,omitempty"`
	Started  time.Time             `json:"started"`
	Finished time.Time             `json:"finished,omitzero"`
}

func stateDir(workdir string) string { return filepath.Join(workdir, ".pipeline") }

func statePath(workdir, stage string) string {
	return filepath.Join(stateDir(workdir), "stages", stage+".json")
}

// loadState returns the stage's recorded state, or nil if it never started.
func loadState(workdir, stage string) (*stageState, error) {
	b, err := os.ReadFile(statePath(workdir, stage))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", stage, err)
	}
	var s stageState
	if err := json.Unmarshal(b, &s); err != nil {
		// A damaged state file only costs a re-run.
		return nil, nil
	}
	return &s, nil
}

func saveState(workdir, stage string, s *stageState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(statePath(workdir, stage), b); err != nil {
		return fmt.Errorf("state of %s: %w", stage, err)
	}
	return nil
}
