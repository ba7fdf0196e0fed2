package frames

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestPTS(t *testing.T) {
	v := Video{FPS: 5, TrimHead: 2, DropFirst: true}
	if got := v.PTS(1); got != 2.2 {
		t.Errorf("PTS(1) with drop_first = %v, want 2.2", got)
	}
	v.DropFirst = false
	if got := v.PTS(1); got != 2 {
		t.Errorf("PTS(1) = %v, want 2", got)
	}
	if got := v.PTS(11); got != 4 {
		t.Errorf("PTS(11) = %v, want 4", got)
	}
}

func TestIndexRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := []Video{
		{ID: "b", Source: "/v/b.mp4", Frames: 3, FPS: 5, TrimHead: 2, DropFirst: true, Size: 512, Status: StatusOK},
		{ID: "a", Source: "/v/a.mp4", Status: StatusDamaged, Message: "partial file"},
	}
	if err := WriteIndex(dir, in, nil); err != nil {
		t.Fatal(err)
	}
	out, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, []Video{in[1], in[0]}) {
		t.Errorf("got %+v", out)
	}
	if p := FramePath("/f", "abc", 7); p != "/f/abc/000007.jpg" {
		t.Errorf("FramePath = %s", p)
	}
}

// TestBatchIndex runs a Batch without the engine on two fixture videos and
// checks the rows against the folders.
func TestBatchIndex(t *testing.T) {
	vdir := fixtures(t)
	out := t.TempDir()
	var srcs []Source
	for _, name := range []string{"landscape.mp4", "portrait.mp4"} {
		srcs = append(srcs, sourceOf(t, filepath.Join(vdir, name)))
	}
	ver, err := FFmpegVersion(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	b := Batch{Params: DefaultParams(), FFmpegVersion: ver}
	if b.Fingerprint(srcs[0]) == b.Fingerprint(srcs[1]) {
		t.Error("two videos share a fingerprint")
	}
	p2 := b
	p2.Params.Size = 256
	if b.Fingerprint(srcs[0]) == p2.Fingerprint(srcs[0]) {
		t.Error("size does not enter the fingerprint")
	}
	rows, st, err := b.Run(context.Background(), out, srcs)
	if err != nil {
		t.Fatal(err)
	}
	if st.Extracted != 2 || st.Frames == 0 {
		t.Errorf("stats %+v", st)
	}
	for i, v := range rows {
		if v.ID != srcs[i].ID || v.FFmpeg != ver || v.Status != StatusOK || v.Size != 512 || v.FPS != 5 || !v.DropFirst {
			t.Errorf("row %+v", v)
		}
		jpgs, _ := filepath.Glob(filepath.Join(out, v.ID, "*.jpg"))
		if len(jpgs) != v.Frames || v.Frames == 0 {
			t.Errorf("%s: %d jpgs, row says %d", v.ID, len(jpgs), v.Frames)
		}
		if _, err := os.Stat(FramePath(out, v.ID, v.Frames)); err != nil {
			t.Error(err)
		}
	}
	if _, _, err := b.Run(context.Background(), out, []Source{srcs[0], srcs[0]}); err == nil {
		t.Error("a repeated id was accepted")
	}
}

func TestVerifyDir(t *testing.T) {
	dir := t.TempDir()
	jpg := []byte{0xFF, 0xD8, 1, 2, 0xFF, 0xD9}
	os.MkdirAll(filepath.Join(dir, "v1"), 0o755)
	for i := 1; i <= 2; i++ {
		os.WriteFile(FramePath(dir, "v1", i), jpg, 0o644)
	}
	rows := []Video{{ID: "v1", Frames: 2, Status: StatusOK}}
	if err := WriteIndex(dir, rows, nil); err != nil {
		t.Fatal(err)
	}
	if err := VerifyDir(dir); err != nil {
		t.Fatalf("intact folder: %v", err)
	}
	os.WriteFile(FramePath(dir, "v1", 2), jpg[:4], 0o644)
	if err := VerifyDir(dir); err == nil {
		t.Error("a truncated JPEG passed")
	}
	os.WriteFile(FramePath(dir, "v1", 2), jpg, 0o644)
	os.Remove(FramePath(dir, "v1", 1))
	if err := VerifyDir(dir); err == nil {
		t.Error("a missing frame passed")
	}
}
