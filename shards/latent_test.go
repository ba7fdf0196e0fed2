package shards

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func latentVideos(rng *rand.Rand, n, frames, size, text int) []LatentVideo {
	var out []LatentVideo
	for v := 0; v < n; v++ {
		lv := LatentVideo{ID: string(rune('a' + v)), Caption: "clouds over " + string(rune('a'+v)), Text: randVals(rng, text)}
		for f := 0; f < frames+v; f++ {
			lv.Mean = append(lv.Mean, randVals(rng, size))
			lv.LogVar = append(lv.LogVar, randVals(rng, size))
		}
		out = append(out, lv)
	}
	return out
}

func randVals(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// writeLatents writes videos into one shard per two videos and an index.
func writeLatents(t *testing.T, dir, dtype string, videos []LatentVideo) *LatentIndex {
	t.Helper()
	spec := LatentShardSpec{Dtype: dtype, LatentShape: []int{4, 2, 3}, TextShape: []int{5, 2}}
	ix := &LatentIndex{Format: LatentFormat, Dtype: dtype, LatentShape: spec.LatentShape, TextShape: spec.TextShape,
		ScalingFactor: 0.18215, Split: Split{Train: []string{}, Val: []string{}}}
	for s := 0; s*2 < len(videos); s++ {
		w, err := CreateLatentShard(DirOutput(dir), ShardName(s), spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range videos[s*2 : min(len(videos), s*2+2)] {
			if err := w.Add(v); err != nil {
				t.Fatal(err)
			}
			ix.Videos = append(ix.Videos, LatentVideoEntry{ID: v.ID, Frames: len(v.Mean), Shard: s, Split: SplitTrain, Caption: v.Caption, CaptionFrom: "prompt"})
			ix.Split.Train = append(ix.Split.Train, v.ID)
		}
		info, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		ix.Shards = append(ix.Shards, LatentShardInfo{ShardInfo: info, Fingerprint: strings.Repeat("0", 64)})
	}
	if err := WriteLatentIndex(DirOutput(dir), ix); err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestLatentShardsRoundTrip(t *testing.T) {
	for _, dtype := range []string{DtypeFloat16, DtypeFloat32} {
		t.Run(dtype, func(t *testing.T) {
			dir := t.TempDir()
			videos := latentVideos(rand.New(rand.NewPCG(1, 2)), 3, 2, 24, 10)
			writeLatents(t, dir, dtype, videos)
			d, err := OpenLatents(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			tol := 0.0
			if dtype == DtypeFloat16 {
				tol = 1.0 / 1024 // float16's relative rounding
			}
			close := func(what string, got, want []float32) {
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > tol*math.Max(1, math.Abs(float64(want[i]))) {
						t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
					}
				}
			}
			if got := len(d.Videos("")); got != 3 {
				t.Fatalf("%d videos", got)
			}
			mean, lv, text := make([]float32, 24), make([]float32, 24), make([]float32, 10)
			for _, v := range videos {
				if err := d.Text(text, v.ID); err != nil {
					t.Fatal(err)
				}
				close(v.ID+" text", text, v.Text)
				for f := range v.Mean {
					if err := d.Latent(mean, lv, v.ID, f+1); err != nil {
						t.Fatal(err)
					}
					close(v.ID+" mean", mean, v.Mean[f])
					close(v.ID+" logvar", lv, v.LogVar[f])
				}
				if err := d.Latent(mean, lv, v.ID, len(v.Mean)+1); err == nil {
					t.Error("a frame past the end read")
				}
			}
			if d.Metadata[MetaLatentDtype] != dtype || d.Metadata[MetaLatentShape] != "[4,2,3]" {
				t.Errorf("metadata %v", d.Metadata)
			}
		})
	}
}

func TestLatentShardByteFlipCaught(t *testing.T) {
	dir := t.TempDir()
	writeLatents(t, dir, DtypeFloat16, latentVideos(rand.New(rand.NewPCG(3, 4)), 3, 2, 24, 10))
	if err := VerifyLatents(dir); err != nil {
		t.Fatalf("intact: %v", err)
	}
	path := filepath.Join(dir, ShardName(1))
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 1
	os.WriteFile(path, b, 0o644)
	if err := VerifyLatents(dir); err == nil || !strings.Contains(err.Error(), ShardName(1)) {
		t.Fatalf("flipped byte: %v", err)
	}
}

func TestLatentWriterRejectsBadVideos(t *testing.T) {
	w, err := CreateLatentShard(DirOutput(t.TempDir()), ShardName(0), LatentShardSpec{Dtype: DtypeFloat16, LatentShape: []int{4, 2, 3}, TextShape: []int{5, 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.Add(LatentVideo{ID: "x", Text: make([]float32, 10), Mean: [][]float32{make([]float32, 23)}, LogVar: [][]float32{make([]float32, 24)}}); err == nil {
		t.Error("a short mean accepted")
	}
	if err := w.Add(LatentVideo{ID: "x", Text: make([]float32, 9), Mean: [][]float32{make([]float32, 24)}, LogVar: [][]float32{make([]float32, 24)}}); err == nil {
		t.Error("a short text embedding accepted")
	}
	if _, err := CreateLatentShard(DirOutput(t.TempDir()), ShardName(0), LatentShardSpec{Dtype: "bfloat16", LatentShape: []int{4, 2, 3}, TextShape: []int{5, 2}}); err == nil {
		t.Error("dtype bfloat16 accepted")
	}
}
