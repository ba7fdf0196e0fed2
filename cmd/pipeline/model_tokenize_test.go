package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tokenizerFixture is the real CLIP vocabulary the tokenizer package tests with.
const tokenizerFixture = "../../trainer/tokenizer/testdata"

// sdFolderWithTokenizer lays out a model folder whose tokenizer/ is the fixture.
func sdFolderWithTokenizer(t *testing.T) string {
	t.Helper()
	model := t.TempDir()
	dst := filepath.Join(model, "tokenizer")
	os.Mkdir(dst, 0o755)
	for _, f := range []string{"vocab.json", "merges.txt"} {
		b, err := os.ReadFile(filepath.Join(tokenizerFixture, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f), b, 0o644)
	}
	return model
}

func TestModelTokenizePrintsIDsAndWarnsOnCut(t *testing.T) {
	model := sdFolderWithTokenizer(t)
	long := strings.Repeat("clouds ", 80)
	for _, args := range [][]string{
		{"model", "tokenize", model, "a timelapse of clouds drifting over a mountain ridge at sunset", long},
		{"model", "tokenize", "--tokenizer", filepath.Join(model, "tokenizer"), "a timelapse of clouds drifting over a mountain ridge at sunset", long},
		{"model", "tokenize", "a timelapse of clouds drifting over a mountain ridge at sunset", long, "--tokenizer=" + model},
	} {
		code, out, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("want 2 lines, got %q", out)
		}
		var ids []int
		if err := json.Unmarshal([]byte(lines[0]), &ids); err != nil || len(ids) != 77 {
			t.Fatalf("line %q: %v", lines[0], err)
		}
		want := []int{49406, 320, 48154, 539, 6244, 30276, 962, 320, 3965, 6352, 536, 3424, 49407}
		for i, w := range want {
			if ids[i] != w {
				t.Fatalf("ids %v", ids[:13])
			}
		}
		if !strings.Contains(stderr, "warning: text 2") || !strings.Contains(stderr, "80 tokens") || strings.Contains(stderr, "text 1") {
			t.Errorf("stderr %q", stderr)
		}
	}
}

func TestModelTokenizeErrors(t *testing.T) {
	dir := t.TempDir()
	single := filepath.Join(dir, "model.safetensors")
	os.WriteFile(single, []byte("x"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"model"}, exitUsage, "subcommand"},
		{[]string{"model", "nope"}, exitUsage, "unknown subcommand"},
		{[]string{"model", "tokenize"}, exitUsage, "usage"},
		{[]string{"model", "tokenize", dir}, exitUsage, "no TEXT"},
		{[]string{"model", "tokenize", "--bogus", "x"}, exitUsage, "unknown flag"},
		{[]string{"model", "tokenize", dir, "a cloud"}, exitFailed, dir},
		{[]string{"model", "tokenize", single, "a cloud"}, exitFailed, "single file"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}
