package blobstore

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// fetched is the record Fetch keeps beside a fetched file
// (.<name>.object): the object's size, modification time and MD5.
type fetched struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	MD5     string `json:"md5,omitempty"`
}

func fetchedOf(o Object) fetched {
	return fetched{Size: o.Size, ModTime: o.ModTime.UnixNano(), MD5: o.MD5}
}

func fetchedPath(dst string) string {
	return filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".object")
}

func readFetched(dst string) (fetched, bool) {
	var rec fetched
	b, err := os.ReadFile(fetchedPath(dst))
	if err != nil || json.Unmarshal(b, &rec) != nil {
		return rec, false
	}
	return rec, true
}

func writeFetched(dst string, o Object) error {
	b, _ := json.Marshal(fetchedOf(o))
	return atomicfile.WriteFile(fetchedPath(dst), b)
}

// FetchedVersion returns the MD5 of the object that Fetch last copied to
// path, or "" when path was not fetched (a local file) or its store gave
// none. Ingest keys a fetched video's probe by it as well as by the file's
// size and time, which an object rewritten within the same second keeps.
func FetchedVersion(path string) string {
	rec, _ := readFetched(path)
	return rec.MD5
}
