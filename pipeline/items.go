package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// itemRecord is one finished item of a stage that caches per item.
type itemRecord struct {
	Rel         string                `json:"rel"`
	Fingerprint string                `json:"fp"`
	Files       map[string]FileRecord `json:"files"` // relative to OutDir
	// Pending marks the record written just before an item's temporary
	// path is renamed into place: if the run is killed before the full
	// record follows, a final path found on disk holds this fingerprint's
	// complete content (the rename is atomic and the old content was
	// removed before this record was written).
	Pending bool `json:"pending,omitempty"`
}

// itemStore is the per-item cache of one stage: a journal appended as each
// item completes (so a killed run keeps its finished items) and compacted
// when the stage succeeds.
type itemStore struct {
	mu      sync.Mutex
	path    string
	outDir  string
	records map[string]itemRecord
	pending map[string]string // rel -> fingerprint renamed into place but not yet recorded
	visited map[string]bool
}

func itemsPath(workdir, stage string) string {
	return filepath.Join(stateDir(workdir), "items", stage+".jsonl")
}

func openItems(workdir, stage, outDir string) (*itemStore, error) {
	s := &itemStore{path: itemsPath(workdir, stage), outDir: outDir,
		records: map[string]itemRecord{}, pending: map[string]string{}, visited: map[string]bool{}}
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("items of %s: %w", stage, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		var r itemRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Rel == "" {
			continue // a torn last line from a killed run
		}
		if r.Pending {
			s.pending[r.Rel] = r.Fingerprint
			continue
		}
		delete(s.pending, r.Rel)
		if r.Fingerprint == "" {
			delete(s.records, r.Rel) // a removal
			continue
		}
		s.records[r.Rel] = r
	}
	return s, nil
}

// pendingRels returns the paths of items renamed into place whose full
// record a killed run did not write.
func (s *itemStore) pendingRels() []string {
	out := make([]string, 0, len(s.pending))
	for rel := range s.pending {
		out = append(out, rel)
	}
	return out
}

// files returns every file that belongs to a recorded item.
func (s *itemStore) files() map[string]FileRecord {
	out := map[string]FileRecord{}
	for _, r := range s.records {
		for k, v := range r.Files {
			out[k] = v
		}
	}
	return out
}

func (s *itemStore) append(r itemRecord) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// build implements StageRun.Item.
func (s *itemStore) build(ctx context.Context, rel, fp string, build func(tmp string) error) (bool, error) {
	rel = filepath.ToSlash(filepath.Clean(rel))
	if rel == "." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return false, fmt.Errorf("item %q: path must be inside the stage's output folder", rel)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	rec, ok := s.records[rel]
	pendingFP := s.pending[rel]
	s.visited[rel] = true
	s.mu.Unlock()
	final := filepath.Join(s.outDir, filepath.FromSlash(rel))
	if ok && rec.Fingerprint == fp {
		problem, err := verifyFiles(s.outDir, rec.Files)
		if err == nil && problem == "" {
			return true, nil
		}
	}
	if pendingFP == fp {
		// Killed between the rename and the full record: the item is complete.
		if _, err := os.Lstat(final); err == nil {
			return true, s.record(rel, fp)
		}
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return false, err
	}
	tmp := TempPath(final)
	defer os.RemoveAll(tmp)
	if err := build(tmp); err != nil {
		return false, err
	}
	if _, err := os.Lstat(tmp); err != nil {
		return false, fmt.Errorf("item %s: build wrote nothing at its temporary path", rel)
	}
	if err := os.RemoveAll(final); err != nil {
		return false, err
	}
	s.mu.Lock()
	err := s.append(itemRecord{Rel: rel, Fingerprint: fp, Pending: true})
	s.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("item %s: journal: %w", rel, err)
	}
	if err := atomicfile.Publish(tmp, final); err != nil {
		return false, fmt.Errorf("item %s: %w", rel, err)
	}
	return false, s.record(rel, fp)
}

// record scans a finished item's files and appends its full record.
func (s *itemStore) record(rel, fp string) error {
	files, err := scanItem(s.outDir, rel)
	if err != nil {
		return fmt.Errorf("item %s: %w", rel, err)
	}
	rec := itemRecord{Rel: rel, Fingerprint: fp, Files: files}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[rel] = rec
	delete(s.pending, rel)
	if err := s.append(rec); err != nil {
		return fmt.Errorf("item %s: journal: %w", rel, err)
	}
	return nil
}

// scanItem records the files of one item (a file or a folder).
func scanItem(outDir, rel string) (map[string]FileRecord, error) {
	path := filepath.Join(outDir, filepath.FromSlash(rel))
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		r, err := recordFile(path, nil, rel)
		if err != nil {
			return nil, err
		}
		return map[string]FileRecord{rel: r}, nil
	}
	sub, err := scanTree(path, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string]FileRecord, len(sub))
	for k, v := range sub {
		out[rel+"/"+k] = v
	}
	return out, nil
}

// prune deletes the items no run visited (a source video removed) and
// rewrites the journal compactly.
func (s *itemStore) prune() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keep []itemRecord
	for rel, r := range s.records {
		if s.visited[rel] {
			keep = append(keep, r)
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.outDir, filepath.FromSlash(rel))); err != nil {
			return err
		}
		delete(s.records, rel)
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].Rel < keep[j].Rel })
	var b strings.Builder
	for _, r := range keep {
		line, _ := json.Marshal(r)
		b.Write(line)
		b.WriteByte('\n')
	}
	return WriteFileAtomic(s.path, []byte(b.String()))
}
