package ingest

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultInclude are the globs a folder source matches when none are given:
// the usual video file extensions, in any letter case.
var DefaultInclude = []string{
	"*.mp4", "*.m4v", "*.mov", "*.mkv", "*.webm", "*.avi", "*.mts", "*.m2ts",
	"*.ts", "*.mpg", "*.mpeg", "*.wmv", "*.flv", "*.3gp", "*.ogv",
}

// Find walks root recursively and returns the absolute paths of the regular
// files (or links to them) that match an include glob and no exclude glob,
// sorted. Names starting with "." (hidden files and folders, temporary
// files) are skipped. A glob without "/" matches the base name; one with "/"
// matches the slash-separated path relative to root, where "**" matches any
// number of folders. Matching ignores letter case. Empty include means
// DefaultInclude.
func Find(root string, include, exclude []string) ([]string, error) {
	if len(include) == 0 {
		include = DefaultInclude
	}
	for _, g := range append(append([]string(nil), include...), exclude...) {
		if _, err := path.Match(strings.ReplaceAll(g, "**", "*"), ""); err != nil {
			return nil, fmt.Errorf("ingest: bad glob %q: %w", g, err)
		}
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	var out []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("ingest: walk %s: %w", p, err)
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if matchAny(include, rel) && !matchAny(exclude, rel) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// Match reports whether the slash-separated path rel is one Find would
// return for these globs (rel's folders are not checked for hidden names).
func Match(include, exclude []string, rel string) bool {
	if len(include) == 0 {
		include = DefaultInclude
	}
	return matchAny(include, rel) && !matchAny(exclude, rel)
}

func matchAny(globs []string, rel string) bool {
	for _, g := range globs {
		if matchGlob(g, rel) {
			return true
		}
	}
	return false
}

// matchGlob matches one glob against a slash-separated relative path.
func matchGlob(glob, rel string) bool {
	glob, rel = strings.ToLower(glob), strings.ToLower(rel)
	if !strings.Contains(glob, "/") {
		ok, _ := path.Match(glob, path.Base(rel))
		return ok
	}
	return matchSegments(strings.Split(glob, "/"), strings.Split(rel, "/"))
}

func matchSegments(g, p []string) bool {
	for len(g) > 0 {
		if g[0] == "**" {
			for i := 0; i <= len(p); i++ {
				if matchSegments(g[1:], p[i:]) {
					return true
				}
			}
			return false
		}
		if len(p) == 0 {
			return false
		}
		if ok, _ := path.Match(g[0], p[0]); !ok {
			return false
		}
		g, p = g[1:], p[1:]
	}
	return len(p) == 0
}
