package synth

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Every fault file exists and is what it claims to be, as ffprobe and ffmpeg
// see it.
func TestFaultsAreWhatTheyClaim(t *testing.T) {
	dir := t.TempDir()
	sp := tiny.WithDefaults()
	written, err := WriteFaults(context.Background(), dir, sp)
	if err != nil {
		t.Fatal(err)
	}
	faults := Faults(sp)
	if len(written) != len(faults) {
		t.Fatalf("WriteFaults wrote %d files, Faults lists %d", len(written), len(faults))
	}
	byKind := map[FaultKind]string{}
	for _, f := range faults {
		if written[f.Name] != f.What {
			t.Errorf("WriteFaults map[%q] = %q, want %q", f.Name, written[f.Name], f.What)
		}
		if (f.Kind == FaultOddName) != f.Accept {
			t.Errorf("%s: Accept = %v", f.Name, f.Accept)
		}
		byKind[f.Kind] = filepath.Join(dir, f.Name)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(faults) {
		t.Errorf("folder holds %d entries (temporary files left?), want %d", len(ents), len(faults))
	}

	t.Run("empty", func(t *testing.T) {
		if fi, err := os.Stat(byKind[FaultEmpty]); err != nil || fi.Size() != 0 {
			t.Fatalf("stat: %v, size %d", err, fi.Size())
		}
	})
	t.Run("not_video", func(t *testing.T) {
		b, err := os.ReadFile(byKind[FaultNotVideo])
		if err != nil || !strings.Contains(string(b), "not a video") {
			t.Fatalf("content %q, %v", b, err)
		}
		if _, err := probe(t, byKind[FaultNotVideo]); err == nil {
			t.Error("ffprobe accepts the text file")
		}
	})
	t.Run("truncated", func(t *testing.T) {
		// The index of a plain MP4 sits at the end: cut, it cannot be opened.
		_, err := probe(t, byKind[FaultTruncated])
		if err == nil || !strings.Contains(err.Error(), "moov atom not found") {
			t.Fatalf("ffprobe err = %v, want moov atom not found", err)
		}
	})
	t.Run("truncated_fast", func(t *testing.T) {
		// The index survives: ffprobe reports the full clip, decoding yields
		// far fewer frames than the index promises.
		pr := mustProbe(t, byKind[FaultTruncatedFast])
		v, ok := pr.video()
		if !ok {
			t.Fatal("no video stream")
		}
		if d := pr.duration(t); math.Abs(d-sp.Seconds) > 0.01 {
			t.Errorf("duration %g, want the full %g", d, sp.Seconds)
		}
		promised, _ := strconv.Atoi(v.NbFrames)
		got := len(frameMD5s(t, byKind[FaultTruncatedFast]))
		if promised != sp.Frames() || got >= promised*3/4 {
			t.Errorf("index promises %d frames (want %d), decoding gave %d (want well under)", promised, sp.Frames(), got)
		}
	})
	t.Run("too_short", func(t *testing.T) {
		pr := mustProbe(t, byKind[FaultTooShort])
		if _, ok := pr.video(); !ok {
			t.Fatal("no video stream")
		}
		if d := pr.duration(t); d > 4-0.5 || d < 2+0.5 {
			t.Errorf("duration %g, want between one 2 s trim and both", d)
		}
	})
	t.Run("audio_only", func(t *testing.T) {
		pr := mustProbe(t, byKind[FaultAudioOnly])
		if len(pr.Streams) != 1 || pr.Streams[0].CodecType != "audio" {
			t.Errorf("streams %+v, want one audio stream", pr.Streams)
		}
	})
	t.Run("odd_name", func(t *testing.T) {
		path := byKind[FaultOddName]
		name := filepath.Base(path)
		if !strings.Contains(name, " ") || isASCII(name) {
			t.Errorf("name %q lacks spaces or non-ASCII characters", name)
		}
		pr := mustProbe(t, path)
		v, ok := pr.video()
		if !ok || v.Width != sp.Width || v.Height != sp.Height {
			t.Fatalf("video stream %+v, want %dx%d", v, sp.Width, sp.Height)
		}
		if n := len(frameMD5s(t, path)); n != sp.Frames() {
			t.Errorf("decoded %d frames, want %d", n, sp.Frames())
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// With VP9 the truncated fault is a WebM whose header still claims the full
// clip while most frames are gone (ffmpeg reads it and exits 0).
func TestTruncatedWebM(t *testing.T) {
	sp := tiny
	sp.Codec = VP9
	var f Fault
	for _, x := range Faults(sp) {
		if x.Kind == FaultTruncated {
			f = x
		}
	}
	if !strings.HasSuffix(f.Name, ".webm") {
		t.Fatalf("truncated fault of a VP9 set is %q, want .webm", f.Name)
	}
	path := filepath.Join(t.TempDir(), f.Name)
	if err := WriteFault(context.Background(), f, sp, path); err != nil {
		t.Fatal(err)
	}
	pr := mustProbe(t, path)
	if d := pr.duration(t); math.Abs(d-sp.Seconds) > 0.01 {
		t.Errorf("duration %g, want the claimed %g", d, sp.Seconds)
	}
	if n := len(frameMD5s(t, path)); n >= sp.Frames()*3/4 {
		t.Errorf("decoded %d of %d frames, want well under", n, sp.Frames())
	}
}
