package frames

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// VerifyDir checks a frames output folder against its index: every row's
// folder holds exactly frames 1..Frames, each a complete JPEG (SOI at the
// start, EOI at the end), and every video folder is in the index.
func VerifyDir(dir string) error {
	rows, err := ReadIndex(dir)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, v := range rows {
		listed[v.ID] = true
		n, err := countFrames(filepath.Join(dir, v.ID))
		if err != nil {
			return fmt.Errorf("frames: verify %s: %w", v.ID, err)
		}
		if n != v.Frames {
			return fmt.Errorf("frames: verify %s: %d frames on disk, index says %d", v.ID, n, v.Frames)
		}
		for i := 1; i <= n; i++ {
			b, err := os.ReadFile(FramePath(dir, v.ID, i))
			if err != nil {
				return fmt.Errorf("frames: verify: %w", err)
			}
			if !bytes.HasPrefix(b, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(b, []byte{0xFF, 0xD9}) {
				return fmt.Errorf("frames: verify %s: %s is not a complete JPEG", v.ID, FrameName(i))
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("frames: verify: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() && !listed[e.Name()] && e.Name()[0] != '.' {
			return fmt.Errorf("frames: verify: folder %s is not in the index", e.Name())
		}
	}
	return nil
}
