package shards

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/frames"
)

func TestPackRoundTrip(t *testing.T) {
	src := makeFramesDir(t, 32, fiveVideos...)
	for _, comp := range []string{CompressionNone, CompressionZstd} {
		t.Run(comp, func(t *testing.T) {
			// About 3 videos' worth per shard: several shards.
			dir, res := pack(t, PackOptions{FramesDir: src, ShardBytes: 20 << 10, ValFraction: 0.3, Compression: comp,
				Tools: map[string]string{"ffmpeg": "ffmpeg version 5.1.6"}})
			if len(res.Skipped) != 1 || !strings.HasPrefix(res.Skipped[0], "foxtrot:") {
				t.Errorf("skipped %v, want foxtrot (damaged)", res.Skipped)
			}
			if n := len(res.Index.Shards); n < 2 {
				t.Fatalf("%d shards, want several (input %d bytes)", n, res.InputBytes)
			}
			ds := open(t, dir)
			videos, err := frames.ReadIndex(src)
			if err != nil {
				t.Fatal(err)
			}
			seenIn := map[string]int{}
			for si, s := range ds.Index.Shards {
				for _, id := range s.Videos {
					if _, dup := seenIn[id]; dup {
						t.Errorf("video %s in two shards", id)
					}
					seenIn[id] = si
				}
			}
			for _, v := range videos {
				if v.Frames == 0 {
					if _, ok := seenIn[v.ID]; ok {
						t.Errorf("damaged video %s was packed", v.ID)
					}
					continue
				}
				if _, ok := seenIn[v.ID]; !ok {
					t.Fatalf("video %s missing", v.ID)
				}
				for fr := 1; fr <= v.Frames; fr++ {
					want, err := os.ReadFile(frames.FramePath(src, v.ID, fr))
					if err != nil {
						t.Fatal(err)
					}
					got, err := ds.FrameJPEG(v.ID, fr)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s frame %d: bytes differ after round trip", v.ID, fr)
					}
					pts, _ := ds.FramePTS(v.ID, fr)
					if pts != v.PTS(fr) {
						t.Errorf("%s frame %d: pts %v, want %v", v.ID, fr, pts, v.PTS(fr))
					}
				}
				if _, err := ds.FrameJPEG(v.ID, v.Frames+1); err == nil {
					t.Errorf("%s: frame past the end gave no error", v.ID)
				}
			}
			if got := ds.Metadata[MetaFormat]; got != Format {
				t.Errorf("metadata format %q", got)
			}
			var tools map[string]string
			if err := json.Unmarshal([]byte(ds.Metadata[MetaTools]), &tools); err != nil {
				t.Fatal(err)
			}
			if tools["ffmpeg"] != "ffmpeg version 5.1.6" || tools["arrow-go"] == "" {
				t.Errorf("tools metadata %v", tools)
			}
			if !strings.Contains(ds.Metadata[MetaRecipe], `"fps":5`) || !strings.Contains(ds.Metadata[MetaPack], `"compression":"`+comp+`"`) {
				t.Errorf("recipe/pack metadata: %s / %s", ds.Metadata[MetaRecipe], ds.Metadata[MetaPack])
			}
			if ds.Index.Compression != comp {
				t.Errorf("index compression %q", ds.Index.Compression)
			}
		})
	}
}

func TestPackDeterministic(t *testing.T) {
	src := makeFramesDir(t, 32, fiveVideos...)
	opt := PackOptions{FramesDir: src, ShardBytes: 20 << 10, ValFraction: 0.3, Workers: 1}
	a, ra := pack(t, opt)
	opt.Workers = 3
	b, rb := pack(t, opt)
	if len(ra.Index.Shards) != len(rb.Index.Shards) {
		t.Fatalf("%d vs %d shards", len(ra.Index.Shards), len(rb.Index.Shards))
	}
	for i := range ra.Index.Shards {
		if ra.Index.Shards[i].SHA256 != rb.Index.Shards[i].SHA256 {
			t.Errorf("shard %d: sha256 differs between two packs", i)
		}
		fa, _ := os.ReadFile(filepath.Join(a, ShardName(i)))
		fb, _ := os.ReadFile(filepath.Join(b, ShardName(i)))
		if !bytes.Equal(fa, fb) || len(fa) == 0 {
			t.Errorf("shard %d: bytes differ", i)
		}
	}
	ia, _ := os.ReadFile(filepath.Join(a, IndexFile))
	ib, _ := os.ReadFile(filepath.Join(b, IndexFile))
	if !bytes.Equal(ia, ib) {
		t.Errorf("index.json differs:\n%s\n%s", ia, ib)
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(a)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("left %s", e.Name())
		}
	}
}

func TestPackShardSizing(t *testing.T) {
	src := makeFramesDir(t, 32, fiveVideos[:5]...)
	// A target smaller than any video: one video per shard, never split.
	_, res := pack(t, PackOptions{FramesDir: src, ShardBytes: 1})
	if len(res.Index.Shards) != 5 {
		t.Errorf("%d shards, want 5", len(res.Index.Shards))
	}
	for _, s := range res.Index.Shards {
		if len(s.Videos) != 1 {
			t.Errorf("%s holds %v", s.File, s.Videos)
		}
	}
	// A large target: one shard.
	_, res = pack(t, PackOptions{FramesDir: src})
	if len(res.Index.Shards) != 1 || res.Index.Shards[0].Rows != 7+3+12+5+9 {
		t.Errorf("shards %+v", res.Index.Shards)
	}
}

func TestPackErrors(t *testing.T) {
	src := makeFramesDir(t, 16, testVideo{id: "a", frames: 3})
	if _, err := Pack(t.Context(), PackOptions{FramesDir: src, Compression: "lz5"}, DirOutput(t.TempDir())); err == nil {
		t.Error("unknown compression accepted")
	}
	os.Remove(frames.FramePath(src, "a", 2))
	_, err := Pack(t.Context(), PackOptions{FramesDir: src}, DirOutput(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "video a frame 2") {
		t.Errorf("missing frame: %v", err)
	}
	os.WriteFile(frames.FramePath(src, "a", 2), []byte("not a jpeg"), 0o644)
	_, err = Pack(t.Context(), PackOptions{FramesDir: src}, DirOutput(t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "video a frame 2") {
		t.Errorf("bad frame: %v", err)
	}
}

func TestPackCancelledLeavesNoFiles(t *testing.T) {
	src := makeFramesDir(t, 16, fiveVideos[:5]...)
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := Pack(ctx, PackOptions{FramesDir: src, ShardBytes: 1, Workers: 1, OnVideo: func(string) {
		if n++; n == 2 {
			cancel()
		}
	}}, DirOutput(out))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want canceled", err)
	}
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") || e.Name() == IndexFile {
			t.Errorf("cancelled pack left %s", e.Name())
		}
	}
}
