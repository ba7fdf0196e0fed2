package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/pipeline"
)

// TestMain lets the kill test re-run this test binary as a pipeline process.
func TestMain(m *testing.M) {
	if cfgPath := os.Getenv("PIPELINE_TEST_CHILD"); cfgPath != "" {
		log := &runLog{file: os.Getenv("PIPELINE_TEST_LOG")}
		cfg, err := pipeline.LoadFile(cfgPath, pipeline.NewRegistry(testKinds(log, nil)))
		if err == nil {
			_, err = pipeline.New(cfg, pipeline.Options{}).Run(context.Background())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const killConfig = `workdir: work
stages:
  first:
    kind: write
  it:
    kind: items
    needs: [first]
    params: {names: [a, b, c, d, e, f], delay: 150ms}
`

// TestKillResume SIGKILLs a run mid-stage: no half-written item is ever
// visible under its final name, and the next run finishes the stage without
// redoing the completed stage or the finished items.
func TestKillResume(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	os.WriteFile(cfgPath, []byte(killConfig), 0o644)
	logPath := filepath.Join(dir, "runs.log")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PIPELINE_TEST_CHILD="+cfgPath, "PIPELINE_TEST_LOG="+logPath)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	itemsDir := filepath.Join(dir, "work", "it", "items")
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, _ := os.ReadDir(itemsDir)
		finished := 0
		for _, e := range entries {
			if pipeline.IsTemp(e.Name()) {
				continue
			}
			parts, _ := os.ReadDir(filepath.Join(itemsDir, e.Name()))
			if len(parts) != 2 {
				t.Errorf("item %s visible with %d of 2 files", e.Name(), len(parts))
			}
			finished++
		}
		if finished >= 2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child made no progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	before := readLines(logPath)
	if !slices.Contains(before, "first") {
		t.Fatalf("child log %v", before)
	}
	var built []string
	for _, l := range before {
		if strings.HasPrefix(l, "it/") {
			built = append(built, l)
		}
	}
	entries, _ := os.ReadDir(itemsDir)
	var done []string
	for _, e := range entries {
		if !pipeline.IsTemp(e.Name()) {
			done = append(done, "it/"+e.Name())
		}
	}

	log := &runLog{}
	cfg, err := pipeline.LoadFile(cfgPath, pipeline.NewRegistry(testKinds(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.New(cfg, pipeline.Options{}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Action != pipeline.ActSkip {
		t.Errorf("completed stage re-ran: %v", res[0].Reasons)
	}
	if !strings.Contains(strings.Join(res[1].Reasons, ";"), "interrupted") {
		t.Errorf("reasons %v", res[1].Reasons)
	}
	again := log.take()
	for _, d := range done {
		if slices.Contains(again, d) {
			t.Errorf("finished item %s rebuilt after the kill (child built %v, resume built %v)", d, built, again)
		}
	}
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		parts, _ := os.ReadDir(filepath.Join(itemsDir, n))
		if len(parts) != 2 {
			t.Errorf("item %s has %d files after resume", n, len(parts))
		}
	}
	left, _ := os.ReadDir(itemsDir)
	for _, e := range left {
		if pipeline.IsTemp(e.Name()) {
			t.Errorf("temporary %s left behind", e.Name())
		}
	}
}

func readLines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Fields(string(b))
}
