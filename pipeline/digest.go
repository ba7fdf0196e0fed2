package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FileRecord is what the engine remembers of one output file.
type FileRecord struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

// hashFile returns the hex SHA-256 of a file's content.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// recordFile stats and hashes path, reusing a known hash when size and
// modification time are unchanged (as cmd/go trusts its file hash cache).
func recordFile(path string, known map[string]FileRecord, rel string) (FileRecord, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return FileRecord{}, err
	}
	rec := FileRecord{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
	if k, ok := known[rel]; ok && k.Size == rec.Size && k.ModTime == rec.ModTime && k.SHA256 != "" {
		rec.SHA256 = k.SHA256
		return rec, nil
	}
	if rec.SHA256, err = hashFile(path); err != nil {
		return FileRecord{}, err
	}
	return rec, nil
}

// scanTree records every regular file under root (relative slash paths),
// skipping temporary names.
func scanTree(root string, known map[string]FileRecord) (map[string]FileRecord, error) {
	out := map[string]FileRecord{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path == root {
				return fs.SkipAll
			}
			return err
		}
		if IsTemp(d.Name()) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		rec, err := recordFile(path, known, rel)
		if err != nil {
			return err
		}
		out[rel] = rec
		return nil
	})
	return out, err
}

// treeDigest hashes a set of file records into one digest.
func treeDigest(files map[string]FileRecord) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%s\n", n, files[n].SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// verifyFiles reports the first recorded file (relative to root) that is
// missing or whose content changed, or "" if all are intact.
func verifyFiles(root string, files map[string]FileRecord) (string, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, rel := range names {
		want := files[rel]
		path := filepath.Join(root, filepath.FromSlash(rel))
		got, err := recordFile(path, files, rel)
		if err != nil {
			if os.IsNotExist(err) {
				return rel + " is missing", nil
			}
			return "", err
		}
		if got.SHA256 != want.SHA256 {
			return rel + " was changed", nil
		}
	}
	return "", nil
}

// listingDigest digests the names, sizes and modification times of the files
// under path (a file or folder) without reading them.
func listingDigest(path string) string {
	h := sha256.New()
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != path {
			return fs.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(path, p)
			fmt.Fprintf(h, "%s\x00%d\x00%d\n", filepath.ToSlash(rel), fi.Size(), fi.ModTime().UnixNano())
		}
		return nil
	})
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return hex.EncodeToString(h.Sum(nil))
}
