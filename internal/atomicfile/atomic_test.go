package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAndAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "a.txt")
	if err := WriteFile(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("two, never committed")
	f.Abort()
	if b, _ := os.ReadFile(p); string(b) != "one" {
		t.Errorf("content %q after an aborted rewrite, want %q", b, "one")
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("%d entries left, want 1 (no temporary files)", len(entries))
	}
}
