package ingest

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestMatchGlob(t *testing.T) {
	cases := []struct {
		glob, rel string
		want      bool
	}{
		{"*.mp4", "a.mp4", true},
		{"*.mp4", "sub/dir/a.MP4", true},
		{"*.mp4", "a.mp4.txt", false},
		{"sub/*.mp4", "sub/a.mp4", true},
		{"sub/*.mp4", "sub/x/a.mp4", false},
		{"sub/**/*.mp4", "sub/a.mp4", true},
		{"sub/**/*.mp4", "sub/x/y/a.mp4", true},
		{"**/raw/*", "a/b/raw/c.mov", true},
		{"**/raw/*", "a/b/cooked/c.mov", false},
		{"clip-??.mkv", "clip-01.mkv", true},
	}
	for _, c := range cases {
		if got := matchGlob(c.glob, c.rel); got != c.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", c.glob, c.rel, got, c.want)
		}
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"a.mp4", "b.MOV", "notes.txt", "sub/c.mkv", "sub/skip/d.mp4", ".hidden.mp4", ".tmp-x/e.mp4", "sub/.tmp-f.mp4-123"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Find(root, nil, []string{"sub/skip/**"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "a.mp4"), filepath.Join(root, "b.MOV"), filepath.Join(root, "sub/c.mkv")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Find = %v\nwant %v", got, want)
	}
	got, err = Find(root, []string{"*.txt"}, nil)
	if err != nil || len(got) != 1 || filepath.Base(got[0]) != "notes.txt" {
		t.Errorf("Find(*.txt) = %v, %v", got, err)
	}
	if _, err := Find(root, []string{"[bad"}, nil); err == nil {
		t.Error("a malformed glob was accepted")
	}
	if _, err := Find(filepath.Join(root, "missing"), nil, nil); err == nil {
		t.Error("a missing folder gave no error")
	}
}

func TestExpectedFrames(t *testing.T) {
	cases := []struct {
		d    float64
		want int
	}{{12, 39}, {10, 29}, {4, 0}, {3, 0}, {4.4, 1}, {7.1, 14}}
	for _, c := range cases {
		if got := ExpectedFrames(c.d, 2, 2, 5, true); got != c.want {
			t.Errorf("ExpectedFrames(%g) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := []Video{
		{ID: "bbbb", Path: "/v/b.mp4", Size: 3, SHA256: "bbbb", Duration: 12.5, Width: 640, Height: 360, FPS: 25, Codec: "h264", PixFmt: "yuv420p", Streams: 1, Status: StatusOK},
		{ID: "aaaa", Path: "/v/a é.mp4", Status: StatusQuarantined, Reason: ReasonEmptyFile, Message: "zero bytes"},
	}
	data, err := EncodeManifest(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ManifestFile)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := ReadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, []Video{in[1], in[0]}) {
		t.Errorf("round trip:\n got %+v\nwant %+v (sorted by path)", out, in)
	}
	if err := os.WriteFile(path, []byte("{\"id\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(path); err == nil {
		t.Error("a bad row was accepted")
	}
}

func TestToolMessage(t *testing.T) {
	in := "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x558dcd99a180] moov atom not found\n\n/x/a.mp4:   Invalid data found when processing input\n"
	want := "[mov,mp4,m4a,3gp,3g2,mj2] moov atom not found | /x/a.mp4: Invalid data found when processing input"
	if got := ToolMessage(in, 600); got != want {
		t.Errorf("ToolMessage:\n got %q\nwant %q", got, want)
	}
	if got := ToolMessage("abcdefgh", 3); got != "…fgh" {
		t.Errorf("ToolMessage cut = %q", got)
	}
}
