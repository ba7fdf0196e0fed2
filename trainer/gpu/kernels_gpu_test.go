//go:build gpu

package gpu

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// childCacheEnv, when set, makes TestStepKernelCache the child process that
// opens a step with that kernel cache folder and prints its modules.
const childCacheEnv = "PIPELINE_TEST_CHILD_CACHE"

func stepModules(t *testing.T, dir string) []cuda.ModuleInfo {
	t.Helper()
	p, err := model.NewParams(model.Tiny(), 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStep(p, true, 1, 2, 16, 16, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mods := s.Device().Modules()
	if len(mods) != 2 {
		t.Fatalf("step loaded %d modules, want trainer/cuda's and trainer/gpu's: %+v", len(mods), mods)
	}
	return mods
}

// Counting compilations: the first NewStep with a fresh cache folder
// compiles both modules, a second NewStep in the same process compiles
// nothing, and a new process loads both from the disk cache.
func TestStepKernelCache(t *testing.T) {
	if ok, why := cuda.Available(); !ok {
		t.Fatalf("no GPU: %s", why)
	}
	if dir := os.Getenv(childCacheEnv); dir != "" {
		for _, m := range stepModules(t, dir) {
			fmt.Printf("module %s origin=%s\n", m.Name, m.Origin)
		}
		return
	}
	dir := t.TempDir()
	count := func(mods []cuda.ModuleInfo) (compiled int) {
		for _, m := range mods {
			if m.Origin == cuda.OriginCompiled {
				compiled++
			}
		}
		return compiled
	}
	if n := count(stepModules(t, dir)); n != 2 {
		t.Errorf("first step compiled %d modules, want 2", n)
	}
	second := stepModules(t, dir)
	if n := count(second); n != 0 {
		t.Errorf("second step in one process compiled %d modules, want 0: %+v", n, second)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestStepKernelCache$", "-test.v")
	cmd.Env = append(os.Environ(), childCacheEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	for _, name := range []string{"cuda", "gpu"} {
		if want := fmt.Sprintf("module %s origin=%s\n", name, cuda.OriginDisk); !strings.Contains(string(out), want) {
			t.Errorf("a new process did not load module %s from the disk cache:\n%s", name, out)
		}
	}
}
