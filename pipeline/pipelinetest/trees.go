package pipelinetest

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TreeDigests maps every non-hidden file under dir to its SHA-256.
func TreeDigests(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && path != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		sum := sha256.Sum256(data)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// SameTrees fails the test unless the stages' output folders of two
// workdirs hold the same files with the same bytes.
func SameTrees(t testing.TB, a, b string, stages ...string) {
	t.Helper()
	for _, s := range stages {
		ta, tb := TreeDigests(t, filepath.Join(a, s)), TreeDigests(t, filepath.Join(b, s))
		if len(ta) == 0 {
			t.Fatalf("%s: no files in %s", s, a)
		}
		for k, v := range ta {
			if tb[k] != v {
				t.Errorf("%s/%s: digest %.12s here, %.12s there", s, k, v, tb[k])
			}
		}
		for k := range tb {
			if _, ok := ta[k]; !ok {
				t.Errorf("%s/%s: only in the second run", s, k)
			}
		}
	}
}
