package cuda

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// On a machine without the NVIDIA driver (CI), Available must say so and name the
// library and what to install; with a GPU it must report it.
func TestAvailableExplains(t *testing.T) {
	ok, why := Available()
	if why == "" {
		t.Fatal("Available gave no reason")
	}
	t.Logf("available=%v: %s", ok, why)
	if ok {
		return
	}
	for _, want := range []string{"libcuda.so.1", "install", LibraryPathEnv} {
		if !strings.Contains(why, want) {
			t.Errorf("reason %q does not mention %q", why, want)
		}
	}
}

func TestOpenWithoutDriverFails(t *testing.T) {
	if ok, _ := Available(); ok {
		t.Skip("a GPU is present")
	}
	d, err := Open(0, Options{})
	if err == nil {
		d.Close()
		t.Fatal("Open succeeded without a driver")
	}
	if !errors.Is(err, ErrNoLibrary) {
		t.Errorf("Open error %v does not wrap ErrNoLibrary", err)
	}
}

// The override folder is tried first, and a broken library there is reported with the
// loader's own message.
func TestLibraryPathOverride(t *testing.T) {
	dir := t.TempDir()
	// A soname no system has, so the loader's own search finds nothing either.
	const soname = "libpipeline-test-absent.so.1"
	if err := os.WriteFile(filepath.Join(dir, soname), []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(LibraryPathEnv, dir+string(os.PathListSeparator)+"/nonexistent-dir")
	lib := library{what: "test library", sonames: []string{soname}, install: "install it"}
	got := candidates(soname)
	want := []string{filepath.Join(dir, soname), "/nonexistent-dir/" + soname, soname}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("candidates = %v, want %v", got, want)
	}
	h, path, err := lib.open()
	if err == nil {
		t.Fatalf("loaded a non-ELF file as %s (handle %x)", path, h)
	}
	msg := err.Error()
	if !errors.Is(err, ErrNoLibrary) || !strings.Contains(msg, filepath.Join(dir, soname)) || !strings.Contains(msg, "install it") {
		t.Errorf("error %q should wrap ErrNoLibrary, name the override path and the remedy", msg)
	}
}

func TestSizeClass(t *testing.T) {
	for _, c := range []struct{ in, want int64 }{
		{0, 512}, {1, 512}, {512, 512}, {513, 1024}, {1<<20 - 1, 1 << 20}, {1 << 20, 2 << 20},
		{2 << 20, 2 << 20}, {2<<20 + 1, 4 << 20}, {100 << 20, 100 << 20},
	} {
		if got := sizeClass(c.in); got != c.want {
			t.Errorf("sizeClass(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// Every kernel the Go code launches exists in the embedded sources, so a rename cannot
// surface only on a GPU.
func TestLaunchedKernelsExist(t *testing.T) {
	src, err := builtinModule().Source()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("ops_conv.go"); err != nil {
		t.Skip("not run from the package folder (a test binary elsewhere)")
	}
	re := regexp.MustCompile(`\.(?:elementwise|perRow|launch)\("(\w+)"`)
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			seen++
			if !strings.Contains(src, `extern "C" __global__ void `+m[1]+"(") {
				t.Errorf("%s launches %q, which no kernel file defines", f, m[1])
			}
		}
	}
	if seen < 20 {
		t.Errorf("found only %d launches; the pattern is stale", seen)
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv(CacheEnv, "/tmp/x")
	if got := cacheDir(""); got != "/tmp/x" {
		t.Errorf("cacheDir with %s = %q", CacheEnv, got)
	}
	if got := cacheDir("-"); got != "" {
		t.Errorf(`cacheDir("-") = %q, want no cache`, got)
	}
	if got := cacheDir("/y"); got != "/y" {
		t.Errorf(`cacheDir("/y") = %q`, got)
	}
}
