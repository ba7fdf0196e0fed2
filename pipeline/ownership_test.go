package pipeline_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/pipeline"
)

// An empty folder is adopted; a file dropped later into an owned folder is
// deleted as unrecorded only when the engine could have written it (newer
// than the folder's mark); an older one fails the stage and stays.
func TestOwnedFolderDeletesOnlyWhatTheEngineCouldHaveWritten(t *testing.T) {
	var log runLog
	p := load(t, &log, chain)
	if err := os.MkdirAll(p.Dir("a"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.Run(pipeline.Options{})
	expectRan(t, &log, "a", "b", "c")

	stray := filepath.Join(p.Dir("a"), "stray.txt")
	os.WriteFile(stray, []byte("left by a killed run"), 0o644)
	p.Run(pipeline.Options{Stages: []string{"a"}, Force: true})
	log.take()
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("an unrecorded new file survived the re-run: %v", err)
	}

	old := filepath.Join(p.Dir("a"), "users-notes.txt")
	os.WriteFile(old, []byte("mine"), 0o644)
	past := time.Now().Add(-24 * time.Hour)
	os.Chtimes(old, past, past)
	_, err := p.TryRun(t.Context(), pipeline.Options{Stages: []string{"a"}, Force: true})
	if err == nil || !strings.Contains(err.Error(), "users-notes.txt") || !strings.Contains(err.Error(), "did not write it") {
		t.Errorf("err = %v, want one naming users-notes.txt", err)
	}
	if b, _ := os.ReadFile(old); string(b) != "mine" {
		t.Errorf("the user's file is gone or changed: %q", b)
	}
}
