package jsonl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	os.WriteFile(path, []byte(`{"a":1}`+"\n\n"+`{"a":2}`+"\n"), 0o644)
	got, err := Read[struct{ A int }](path)
	if err != nil || len(got) != 2 || got[1].A != 2 {
		t.Fatalf("got %v, %v", got, err)
	}
	os.WriteFile(path, []byte(`{"a":1}`+"\n"+`{"a":`+"\n"), 0o644)
	if _, err := Read[struct{ A int }](path); err == nil || !strings.Contains(err.Error(), "x.jsonl:2:") {
		t.Fatalf("err = %v, want one naming line 2", err)
	}
}
