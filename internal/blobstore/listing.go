package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// ListingDigest digests the listing of the bucket location u: every
// object's key, size, MD5 (S3's ETag, where the store reports one) and
// modification time, without reading any object. Adding, removing, renaming
// or rewriting an object changes it, as a local folder's listing digest does
// in the engine's cache keys.
func ListingDigest(ctx context.Context, u string) (string, error) {
	s, err := Open(ctx, u)
	if err != nil {
		return "", err
	}
	defer s.Close()
	objs, err := s.List(ctx)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, o := range objs {
		fmt.Fprintf(h, "%s\x00%d\x00%s\x00%d\n", o.Rel, o.Size, o.MD5, o.ModTime.UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
