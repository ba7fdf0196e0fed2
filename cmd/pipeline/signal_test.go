package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/stages"
)

// TestMain runs this test binary as the CLI when PIPELINE_CLI_CHILD is set,
// with an extra test-only kind `sleep` that writes a marker and waits to be cancelled.
func TestMain(m *testing.M) {
	if os.Getenv("PIPELINE_CLI_CHILD") != "" {
		allKinds = func() []pipeline.Kind {
			return append(stages.All(), pipeline.Kind{Name: "sleep", Version: "1",
				Run: func(ctx context.Context, r *pipeline.StageRun) error {
					if err := r.WriteFile("started", nil); err != nil {
						return err
					}
					<-ctx.Done()
					return ctx.Err()
				}})
		}
		os.Exit(run(strings.Fields(os.Getenv("PIPELINE_CLI_CHILD")), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestInterruptExits130AndKeepsWork(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	os.WriteFile(cfg, []byte("workdir: w\nstages:\n  nap:\n    kind: sleep\n"), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PIPELINE_CLI_CHILD=run "+cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "w", "nap", "started")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("stage never started: %s", stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != exitCanceled {
		t.Fatalf("exit %d (%v), want 130; stderr:\n%s", code, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr lacks the interrupt message:\n%s", stderr.String())
	}
	// The lock is released: a dry run sees the interrupted stage.
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), "PIPELINE_CLI_CHILD=run --dry-run "+cfg)
	plan, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(plan), "interrupted (resumes)") {
		t.Fatalf("dry run after interrupt: %v\n%s", err, plan)
	}
}
