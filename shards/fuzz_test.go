package shards

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzOpenShard feeds the shard reader corrupted shard bytes (the checksum
// check is bypassed: it would reject them all). The reader must return an
// error or a shard whose frames can all be read and decoded; it must never
// panic. Run: go test ./shards -run '^$' -fuzz '^FuzzOpenShard$' -fuzztime 20s -fuzzminimizetime 2s
func FuzzOpenShard(f *testing.F) {
	src := makeFramesDir(f, 8, testVideo{id: "a", frames: 3}, testVideo{id: "b", frames: 2})
	for _, comp := range []string{CompressionNone, CompressionZstd} {
		dir, _ := pack(f, PackOptions{FramesDir: src, Compression: comp})
		data, err := os.ReadFile(filepath.Join(dir, ShardName(0)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
		f.Add(data[len(data)/3:])
	}
	f.Add([]byte{})
	f.Add([]byte("ARROW1\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang becomes a crash, so the fuzzer saves the input.
		tm := time.AfterFunc(20*time.Second, func() { panic("shards: FuzzOpenShard: input takes over 20 s") })
		defer tm.Stop()
		s, err := readShard("fuzz.arrow", data)
		if err != nil {
			return
		}
		for _, sv := range s.videos {
			v := &video{VideoInfo: VideoInfo{ID: sv.id}, shard: s.name}
			for i, fr := range sv.frames {
				_, _ = decodeFrame(v, i+1, fr)
			}
		}
	})
}

// TestReadShardSurvivesMutations runs the fuzz target's check on a fixed set
// of random byte mutations on every test run.
func TestReadShardSurvivesMutations(t *testing.T) {
	src := makeFramesDir(t, 8, testVideo{id: "a", frames: 3}, testVideo{id: "b", frames: 2})
	for _, comp := range []string{CompressionNone, CompressionZstd} {
		dir, _ := pack(t, PackOptions{FramesDir: src, Compression: comp})
		data, err := os.ReadFile(filepath.Join(dir, ShardName(0)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readShard("intact", data); err != nil {
			t.Fatalf("%s: intact shard: %v", comp, err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		failed := 0
		for i := 0; i < 800; i++ {
			d := append([]byte(nil), data...)
			for k := 0; k < 1+r.IntN(4); k++ {
				d[r.IntN(len(d))] = byte(r.IntN(256))
			}
			if r.IntN(8) == 0 {
				d = d[:r.IntN(len(d))]
			}
			s, err := readShard("mutated", d)
			if err != nil {
				failed++
				continue
			}
			for _, sv := range s.videos {
				v := &video{VideoInfo: VideoInfo{ID: sv.id}, shard: s.name}
				for i, fr := range sv.frames {
					_, _ = decodeFrame(v, i+1, fr)
				}
			}
		}
		if failed == 0 {
			t.Errorf("%s: no mutation was detected", comp)
		}
	}
}
