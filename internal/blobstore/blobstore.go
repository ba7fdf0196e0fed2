// Package blobstore reads and writes objects named by URL through
// gocloud.dev/blob: s3:// (AWS S3 and S3-compatible stores: endpoint=,
// use_path_style=true, region= in the query), file:// and mem://; gs://
// where the command links gocloud.dev/blob/gcsblob (pipeline-beam does: its
// 30 MB of client would make pipeline half as big again).
// It owns the ways the tool uses a bucket: digesting a folder's listing
// (for cache keys), fetching source videos into a local folder (ffprobe and
// ffmpeg read local files), fetching shards into a content-addressed cache
// (Cache) and publishing a finished output folder, each object written
// whole (a store shows an object only once its upload completes) and the
// index last.
package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// MetaSHA256 is the object metadata key holding the hex SHA-256 of an
// object's content, set by Publish.
const MetaSHA256 = "sha256"

// IsURL reports whether s names a bucket location (scheme://...) rather
// than a local path.
func IsURL(s string) bool {
	i := strings.Index(s, "://")
	return i > 0 && !strings.ContainsAny(s[:i], `/\`)
}

// Store is a folder in a bucket: the objects under Prefix.
type Store struct {
	URL    string
	Prefix string // "" or ending in "/"
	bucket *blob.Bucket
}

// Open opens the bucket location u, e.g. s3://bucket/videos?region=eu-west-1
// (the path after the bucket is the folder).
func Open(ctx context.Context, u string) (*Store, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("blobstore: %q: %w", u, err)
	}
	prefix := strings.Trim(pu.Path, "/")
	if pu.Scheme == "file" {
		prefix = "" // file:///abs/folder: the folder is the bucket
	} else {
		pu.Path = ""
	}
	if prefix != "" {
		prefix += "/"
	}
	b, err := blob.OpenBucket(ctx, pu.String())
	if err != nil {
		return nil, fmt.Errorf("blobstore: open %s: %w", u, err)
	}
	return &Store{URL: u, Prefix: prefix, bucket: b}, nil
}

// Close closes the bucket.
func (s *Store) Close() error { return s.bucket.Close() }

// Object is one object of a Store.
type Object struct {
	// Rel is the key relative to the Store's prefix, slash-separated.
	Rel     string
	Size    int64
	ModTime time.Time
	// MD5 is the hex MD5 of the content where the store reports one (S3's
	// ETag of a single-part upload), else "".
	MD5 string
}

// List returns every object under the prefix, sorted by key.
func (s *Store) List(ctx context.Context) ([]Object, error) {
	var out []Object
	it := s.bucket.List(&blob.ListOptions{Prefix: s.Prefix})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: list %s: %w", s.Name(""), err)
		}
		if o.IsDir || strings.HasSuffix(o.Key, "/") {
			continue
		}
		out = append(out, Object{Rel: strings.TrimPrefix(o.Key, s.Prefix), Size: o.Size, ModTime: o.ModTime, MD5: hex.EncodeToString(o.MD5)})
	}
}

// Fetch copies object o to dst (through a temporary file) unless dst
// already holds it, gives dst the object's modification time and records
// the object's size, time and MD5 beside it (FetchedVersion), so a re-fetch
// of an unchanged object is a no-op and an object rewritten with the same
// size within the same second (a new ETag) is fetched again.
func (s *Store) Fetch(ctx context.Context, o Object, dst string) error {
	if fi, err := os.Stat(dst); err == nil && fi.Size() == o.Size && fi.ModTime().Equal(o.ModTime) {
		rec, ok := readFetched(dst)
		if !ok { // fetched before records existed: size and time matched then too
			return writeFetched(dst, o)
		}
		if rec == fetchedOf(o) {
			return nil
		}
	}
	r, err := s.bucket.NewReader(ctx, s.Prefix+o.Rel, nil)
	if err != nil {
		return fmt.Errorf("blobstore: read %s: %w", s.Name(o.Rel), err)
	}
	defer r.Close()
	f, err := atomicfile.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Abort()
		return fmt.Errorf("blobstore: read %s: %w", s.Name(o.Rel), err)
	}
	if err := f.Commit(); err != nil {
		return err
	}
	if err := os.Chtimes(dst, o.ModTime, o.ModTime); err != nil {
		return err
	}
	return writeFetched(dst, o)
}

// Name is the location of the object rel without the URL's query
// (endpoints, profiles), for messages.
func (s *Store) Name(rel string) string {
	u := s.URL
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	return strings.TrimSuffix(u, "/") + "/" + rel
}

// Published is one object Publish wrote or found in place.
type Published struct {
	Rel    string `json:"rel"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Skipped is true when the object was in place with the same content.
	Skipped bool `json:"skipped,omitempty"`
}

// Publish uploads the files rels (relative to dir, slash-separated) in
// order, so the caller puts its index last. Each object is written whole
// with its SHA-256 in its metadata, then its size and digest are read back
// and checked; an object already holding the same digest is left alone.
func (s *Store) Publish(ctx context.Context, dir string, rels []string) ([]Published, error) {
	out := make([]Published, 0, len(rels))
	for _, rel := range rels {
		p, err := s.publishOne(ctx, dir, rel)
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (s *Store) publishOne(ctx context.Context, dir, rel string) (Published, error) {
	local := filepath.Join(dir, filepath.FromSlash(rel))
	sum, size, err := hashFile(local)
	if err != nil {
		return Published{}, err
	}
	p := Published{Rel: rel, Bytes: size, SHA256: sum}
	key := s.Prefix + path.Clean(rel)
	if a, err := s.bucket.Attributes(ctx, key); err == nil && a.Size == size && a.Metadata[MetaSHA256] == sum {
		p.Skipped = true
		return p, nil
	} else if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return p, fmt.Errorf("blobstore: %s: %w", s.Name(rel), err)
	}
	f, err := os.Open(local)
	if err != nil {
		return p, err
	}
	defer f.Close()
	w, err := s.bucket.NewWriter(ctx, key, &blob.WriterOptions{Metadata: map[string]string{MetaSHA256: sum}})
	if err != nil {
		return p, fmt.Errorf("blobstore: write %s: %w", s.Name(rel), err)
	}
	if _, err := io.Copy(w, f); err != nil {
		_ = w.Close()
		return p, fmt.Errorf("blobstore: write %s: %w", s.Name(rel), err)
	}
	if err := w.Close(); err != nil { // the object appears only now
		return p, fmt.Errorf("blobstore: write %s: %w", s.Name(rel), err)
	}
	return p, s.Check(ctx, p)
}

// Check reads back the object of p and compares its size and recorded
// digest.
func (s *Store) Check(ctx context.Context, p Published) error {
	a, err := s.bucket.Attributes(ctx, s.Prefix+path.Clean(p.Rel))
	if err != nil {
		return fmt.Errorf("blobstore: %s: %w", s.Name(p.Rel), err)
	}
	if a.Size != p.Bytes || a.Metadata[MetaSHA256] != p.SHA256 {
		return fmt.Errorf("blobstore: %s: %d bytes, sha256 %q; want %d, %s", s.Name(p.Rel), a.Size, a.Metadata[MetaSHA256], p.Bytes, p.SHA256)
	}
	return nil
}

// ReadAll returns the content of the object rel.
func (s *Store) ReadAll(ctx context.Context, rel string) ([]byte, error) {
	b, err := s.bucket.ReadAll(ctx, s.Prefix+path.Clean(rel))
	if err != nil {
		return nil, fmt.Errorf("blobstore: read %s: %w", s.Name(rel), err)
	}
	return b, nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("blobstore: %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
