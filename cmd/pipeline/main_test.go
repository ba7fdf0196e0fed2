package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestBadConfigExitsTwoWithPositions(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(cfg, []byte("workdir: w\nstages:\n  a:\n    kind: nope\n  b:\n    kind: nope\n    needs: [zz]\n"), 0o644)
	for _, cmd := range []string{"run", "validate", "status"} {
		code, _, stderr := runCLI(t, cmd, cfg)
		if code != exitUsage {
			t.Errorf("%s: exit %d, want 2; stderr:\n%s", cmd, code, stderr)
		}
		for _, want := range []string{cfg + `:4:11: stage "a": unknown kind "nope"`, cfg + ":6:11:", cfg + `:7:13: stage "b" needs unknown stage "zz"`} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, stderr)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "w")); !os.IsNotExist(err) {
		t.Errorf("a bad config created the workdir")
	}
}

func TestUsageErrors(t *testing.T) {
	if code, _, _ := runCLI(t); code != exitUsage {
		t.Errorf("no args: exit %d", code)
	}
	if code, _, stderr := runCLI(t, "frobnicate"); code != exitUsage || !strings.Contains(stderr, "unknown command") {
		t.Errorf("unknown command: exit %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "run", "--no-such-flag"); code != exitUsage || !strings.Contains(stderr, "no-such-flag") {
		t.Errorf("bad flag: exit %d %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "run", "missing.yaml"); code != exitFailed || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("missing file: exit %d %s", code, stderr)
	}
}

func TestStagesListsEveryKindsParams(t *testing.T) {
	code, out, _ := runCLI(t, "stages")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, k := range kindsForDocs() {
		if !strings.Contains(out, k.Name+" (version "+k.Version+")") {
			t.Errorf("stages output lacks kind %s", k.Name)
		}
		for _, p := range k.Params {
			mark := " "
			if p.NoKey {
				mark = "*"
			}
			if !strings.Contains(out, "   "+mark+p.Name+"  ") {
				t.Errorf("stages output lacks %s.%s", k.Name, p.Name)
			}
		}
	}
}
