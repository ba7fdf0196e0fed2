package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// Cache is a folder of objects fetched from stores, each under the SHA-256
// of its content (<Dir>/sha256/<hex>). An object is fetched into
// <hex>.partial, resumed from where a killed fetch stopped, checked against
// the digest the caller expects and only then renamed into place: a file
// under a digest name is always complete and verified, a partial one is
// never used, and a later run (or another workdir sharing Dir) finds it and
// fetches nothing. Fetch creates and removes only those two names.
type Cache struct{ Dir string }

// Fetch returns the path of the object rel of s, whose content has size
// bytes and the hex SHA-256 sum, fetching it unless the cache holds it;
// fetched counts the bytes read from the store. An object whose bytes do
// not match is an error naming it (after one fresh attempt when a resumed
// partial was to blame), and nothing of it is kept.
func (c Cache) Fetch(ctx context.Context, s *Store, rel string, size int64, sum string) (_ string, fetched int64, _ error) {
	if !isDigest(sum) || size < 0 {
		return "", 0, fmt.Errorf("blobstore: %s: bad sha256 %q or size %d", s.Name(rel), sum, size)
	}
	final := filepath.Join(c.Dir, "sha256", sum)
	if ok, err := cachedAt(final, size); ok || err != nil {
		return final, 0, err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", 0, fmt.Errorf("blobstore: cache: %w", err)
	}
	part := final + ".partial"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", 0, fmt.Errorf("blobstore: cache: %w", err)
	}
	defer f.Close()
	// One fetch per object at a time (runs sharing the cache); a killed
	// holder releases the lock.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return "", 0, fmt.Errorf("blobstore: cache: lock %s: %w", part, err)
	}
	if ok, err := cachedAt(final, size); ok || err != nil { // another run fetched it
		_ = os.Remove(part)
		return final, 0, err
	}
	if a, err := s.bucket.Attributes(ctx, s.Prefix+path.Clean(rel)); err != nil {
		return "", 0, fmt.Errorf("blobstore: %s: %w", s.Name(rel), err)
	} else if a.Size != size {
		f.Close()
		_ = os.Remove(part)
		return "", 0, fmt.Errorf("blobstore: %s has %d bytes, the index lists %d", s.Name(rel), a.Size, size)
	}
	for fresh := false; ; fresh = true {
		h, have, err := hashPartial(f, size)
		if err != nil {
			return "", fetched, fmt.Errorf("blobstore: cache: %s: %w", part, err)
		}
		total := have
		if have < size {
			n, err := s.readFrom(ctx, rel, have, size-have+1, io.MultiWriter(f, h))
			fetched += n
			total += n
			if err != nil { // the partial stays: the next run resumes it
				return "", fetched, err
			}
		}
		got := hex.EncodeToString(h.Sum(nil))
		if total == size && got == sum {
			break
		}
		if err := f.Truncate(0); err != nil {
			return "", fetched, fmt.Errorf("blobstore: cache: %s: %w", part, err)
		}
		if have > 0 && !fresh {
			continue // the resumed bytes may be of an object since rewritten
		}
		f.Close()
		_ = os.Remove(part)
		return "", fetched, fmt.Errorf("blobstore: %s is corrupt or was changed: %d bytes with sha256 %s, the index lists %d bytes with %s",
			s.Name(rel), total, got, size, sum)
	}
	if err := f.Sync(); err != nil {
		return "", fetched, fmt.Errorf("blobstore: cache: %s: %w", part, err)
	}
	if err := atomicfile.Rename(part, final); err != nil {
		return "", fetched, fmt.Errorf("blobstore: cache: %w", err)
	}
	return final, fetched, nil
}

// cachedAt reports whether the verified object path exists; one of
// another size is an error (the cache was edited).
func cachedAt(p string, size int64) (bool, error) {
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blobstore: cache: %w", err)
	}
	if fi.Size() != size {
		return false, fmt.Errorf("blobstore: cache: %s has %d bytes, want %d: it was changed; remove it", p, fi.Size(), size)
	}
	return true, nil
}

// hashPartial hashes what f holds and leaves its offset at the end; more
// than size bytes are discarded.
func hashPartial(f *os.File, size int64) (hash.Hash, int64, error) {
	h := sha256.New()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	have, err := io.Copy(h, f)
	if err != nil {
		return nil, 0, err
	}
	if have > size {
		if err := f.Truncate(0); err != nil {
			return nil, 0, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, 0, err
		}
		h.Reset()
		have = 0
	}
	return h, have, nil
}

// readFrom copies at most limit bytes of the object rel from offset to w.
// A resumed read does not ask the S3 client to check a checksum of the
// whole object against the part it receives (stores that send one with a
// range fail every resume otherwise); the cache checks the SHA-256 of the
// whole file after the read.
func (s *Store) readFrom(ctx context.Context, rel string, offset, limit int64, w io.Writer) (int64, error) {
	var opts *blob.ReaderOptions
	if offset > 0 {
		opts = &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
			var o *[]func(*s3.Options)
			if as(&o) {
				*o = append(*o, func(so *s3.Options) { so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired })
			}
			return nil
		}}
	}
	r, err := s.bucket.NewRangeReader(ctx, s.Prefix+path.Clean(rel), offset, -1, opts)
	if err != nil {
		return 0, fmt.Errorf("blobstore: read %s: %w", s.Name(rel), err)
	}
	defer r.Close()
	n, err := io.Copy(w, io.LimitReader(r, limit))
	if err != nil {
		return n, fmt.Errorf("blobstore: read %s: %w", s.Name(rel), err)
	}
	return n, nil
}

// isDigest reports whether s is a SHA-256 in lowercase hex (so a name
// made of it stays inside the cache).
func isDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
