package gpu

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// trainer/cuda is the one CUDA runtime: no file here loads a library,
// compiles with NVRTC or loads a module itself.
func TestNoSecondRuntime(t *testing.T) {
	if _, err := os.Stat("runtime_test.go"); err != nil {
		t.Skip("not run from the package folder")
	}
	forbidden := regexp.MustCompile(`purego|(?i:dlopen|dlsym)|nvrtc|cuModuleLoad|cuLaunchKernel`)
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("gpubench/*.go")
	for _, p := range append(paths, more...) {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := forbidden.Find(b); m != nil {
			t.Errorf("%s mentions %q: CUDA runtime work belongs to trainer/cuda", p, m)
		}
	}
}
