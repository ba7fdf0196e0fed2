package shards

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/frames"
)

func TestOpenDetectsChangedShard(t *testing.T) {
	src := makeFramesDir(t, 16, fiveVideos[:5]...)
	for _, tc := range []struct {
		name   string
		damage func(path string) error
		want   error
	}{
		{"flipped byte", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x40
			return os.WriteFile(p, b, 0o644)
		}, ErrChecksum},
		{"truncated", func(p string) error {
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, st.Size()-100)
		}, ErrSize},
		{"missing", os.Remove, os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := pack1(t, src)
			if err := Verify(dir); err != nil {
				t.Fatalf("intact shards: %v", err)
			}
			victim := ShardName(1)
			if err := tc.damage(filepath.Join(dir, victim)); err != nil {
				t.Fatal(err)
			}
			for name, err := range map[string]error{"Open": openErr(dir), "Verify": Verify(dir)} {
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), victim) {
					t.Errorf("%s: %v; want %v naming %s", name, err, tc.want, victim)
				}
			}
		})
	}
}

func openErr(dir string) error {
	ds, err := Open(dir)
	if err == nil {
		ds.Close()
	}
	return err
}

// TestOpenChecksStructureAgainstIndex: a shard that is intact but does not
// hold what index.json says (an index edited by hand, or shards swapped).
func TestOpenChecksStructureAgainstIndex(t *testing.T) {
	src := makeFramesDir(t, 16, fiveVideos[:5]...)
	dir := pack1(t, src)
	ix, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	ix.Shards[0], ix.Shards[1] = ix.Shards[1], ix.Shards[0]
	ix.Shards[0].File, ix.Shards[1].File = ix.Shards[1].File, ix.Shards[0].File
	data, _ := encodeIndex(ix)
	os.WriteFile(filepath.Join(dir, IndexFile), data, 0o644)
	if err := openErr(dir); err == nil || !strings.Contains(err.Error(), "shard-0000") {
		t.Errorf("swapped shards: %v", err)
	}
}

// corruptJPEG returns a JPEG whose header is valid (pack accepts it) but
// whose entropy-coded data is cut short.
func corruptJPEG(t *testing.T) []byte {
	good := makeFrame(t, 0, 0, 64)
	if _, err := jpeg.DecodeConfig(bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	bad := good[:len(good)-len(good)/4]
	if _, err := jpeg.DecodeConfig(bytes.NewReader(bad)); err != nil {
		t.Fatalf("header broken too: %v", err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(bad)); err == nil {
		t.Fatal("truncated JPEG decodes")
	}
	return bad
}

func TestCorruptJPEGNamesVideoAndFrame(t *testing.T) {
	src := makeFramesDir(t, 16, testVideo{id: "clouds", frames: 4})
	if err := os.WriteFile(frames.FramePath(src, "clouds", 3), corruptJPEG(t), 0o644); err != nil {
		t.Fatal(err)
	}
	ds := open(t, pack1(t, src))
	if _, err := ds.Frame("clouds", 2); err != nil {
		t.Errorf("good frame: %v", err)
	}
	_, err := ds.Frame("clouds", 3)
	if err == nil || !strings.Contains(err.Error(), "video clouds frame 3") || !strings.Contains(err.Error(), ShardName(0)) {
		t.Errorf("Frame: %v", err)
	}
	l, err := NewLoader(ds, LoaderOptions{FramesLength: 4, Resolution: 8, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = l.Next(context.Background())
	if err == nil || !strings.Contains(err.Error(), "video clouds frame 3") {
		t.Errorf("loader: %v", err)
	}
	if _, err2 := l.Next(context.Background()); err2 == nil {
		t.Error("loader goes on after a corrupt frame")
	}
}
