//go:build unix

package shards

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/timelapse-ml/pipeline/frames"
)

// Benchmarks on 512x512 JPEG frames like the recipe's (textured, noisy, so
// sizes are realistic). Run:
//   go test ./shards -run '^$' -bench . -benchtime 3x
// Numbers are with a warm page cache.

const (
	benchSize   = 512
	benchVideos = 4
	benchFrames = 40 // per video
	benchT      = 25
)

var (
	benchOnce sync.Once
	benchDir  string // frames folder
	benchPack string // shards folder
	benchErr  error
)

// benchFixture builds (once per process) the frames folder and its shards.
func benchFixture(b *testing.B) (framesDir, shardsDir string) {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "shards-bench-frames-")
		if benchErr != nil {
			return
		}
		var idx []frames.Video
		for v := 0; v < benchVideos; v++ {
			id := fmt.Sprintf("video-%02d", v)
			if benchErr = os.MkdirAll(filepath.Join(benchDir, id), 0o755); benchErr != nil {
				return
			}
			for f := 1; f <= benchFrames; f++ {
				if benchErr = os.WriteFile(frames.FramePath(benchDir, id, f), benchJPEG(v, f), 0o644); benchErr != nil {
					return
				}
			}
			idx = append(idx, frames.Video{ID: id, Frames: benchFrames, FPS: 5, TrimHead: 2, DropFirst: true, Size: benchSize, Status: frames.StatusOK})
		}
		if benchErr = frames.WriteIndex(benchDir, idx, nil); benchErr != nil {
			return
		}
		if benchPack, benchErr = os.MkdirTemp("", "shards-bench-pack-"); benchErr != nil {
			return
		}
		_, benchErr = Pack(context.Background(), PackOptions{FramesDir: benchDir, ShardBytes: 8 << 20}, DirOutput(benchPack))
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDir, benchPack
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	if benchPack != "" {
		os.RemoveAll(benchPack)
	}
	os.Exit(code)
}

// benchJPEG renders a 512x512 frame: smooth sky and ground with moving
// blobs and pixel noise, at JPEG quality 95 (about the recipe's -q 0 sizes).
func benchJPEG(v, f int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, benchSize, benchSize))
	r := rand.New(rand.NewPCG(uint64(v), uint64(f)))
	for y := 0; y < benchSize; y++ {
		for x := 0; x < benchSize; x++ {
			dx, dy := float64(x-(f*7+v*50)%benchSize), float64(y-200)
			cloud := 60 * (1 / (1 + (dx*dx+dy*dy)/8000))
			n := r.IntN(24)
			var c color.RGBA
			if y < 300 {
				c = color.RGBA{uint8(90 + cloud + float64(n)), uint8(140 + cloud + float64(n)), uint8(min(255, 200+cloud/2+float64(n))), 255}
			} else {
				c = color.RGBA{uint8(40 + (x*y)%50 + n), uint8(90 + (x^y)%60 + n), uint8(30 + n), 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	return buf.Bytes()
}

// benchWorkers lists the worker counts to measure: SHARDS_BENCH_WORKERS
// ("1,2,8"), or 1 and 2.
func benchWorkers() []int {
	var out []int
	for _, f := range strings.Split(os.Getenv("SHARDS_BENCH_WORKERS"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		out = []int{1, 2}
	}
	return out
}

// BenchmarkLoader: clips/s of 25 frames from the shards through Loader.
func BenchmarkLoader(b *testing.B) {
	_, sdir := benchFixture(b)
	ds, err := Open(sdir)
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	for _, res := range []int{64, 256} {
		for _, workers := range benchWorkers() {
			b.Run(fmt.Sprintf("res=%d/workers=%d", res, workers), func(b *testing.B) {
				const batch = 2
				// No frame cache: every frame decoded, as in a first epoch
				// (BenchmarkLoaderCached measures later epochs).
				l, err := NewLoader(ds, LoaderOptions{FramesLength: benchT, Resolution: res, Batch: batch, Workers: workers, Seed: 1, CacheBytes: -1})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				if _, err := l.Next(context.Background()); err != nil { // warm up the workers
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := cpuSeconds()
				for i := 0; i < b.N; i++ {
					bt, err := l.Next(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					l.Recycle(bt)
				}
				reportClips(b, b.N*batch, cpu0)
			})
		}
	}
}

// BenchmarkLoaderCached: clips/s once the frame cache holds every frame (the
// fixture is 160 frames; an epoch visits each about 25 times).
func BenchmarkLoaderCached(b *testing.B) {
	_, sdir := benchFixture(b)
	ds, err := Open(sdir)
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	for _, res := range []int{64, 256} {
		for _, workers := range benchWorkers() {
			b.Run(fmt.Sprintf("res=%d/workers=%d", res, workers), func(b *testing.B) {
				const batch = 4
				l, err := NewLoader(ds, LoaderOptions{FramesLength: benchT, Resolution: res, Batch: batch, Workers: workers, Seed: 1, CacheBytes: 1 << 30})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				for i := 0; i < l.BatchesPerEpoch(); i++ { // one epoch fills the cache
					if _, err := l.Next(context.Background()); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				cpu0 := cpuSeconds()
				for i := 0; i < b.N; i++ {
					bt, err := l.Next(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					l.Recycle(bt)
				}
				reportClips(b, b.N*batch, cpu0)
			})
		}
	}
}

// BenchmarkJPEGFolder: the same clips read from the frames folder (one file
// per frame), decoded and resized the same way, by the same number of
// goroutines: the baseline the shards replace.
func BenchmarkJPEGFolder(b *testing.B) {
	fdir, sdir := benchFixture(b)
	ds, err := Open(sdir)
	if err != nil {
		b.Fatal(err)
	}
	wins, _ := ds.Windows("", benchT, 1)
	ds.Close()
	for _, res := range []int{64, 256} {
		for _, workers := range benchWorkers() {
			b.Run(fmt.Sprintf("res=%d/workers=%d", res, workers), func(b *testing.B) {
				const batch = 2
				frame := 3 * res * res
				r := rand.New(rand.NewPCG(1, 1))
				b.ResetTimer()
				cpu0 := cpuSeconds()
				for i := 0; i < b.N; i++ {
					// One batch: clips spread over the workers.
					data := make([]float32, batch*benchT*frame)
					var g errgroup.Group
					g.SetLimit(workers)
					for c := 0; c < batch; c++ {
						w := wins[r.IntN(len(wins))]
						g.Go(func() error {
							for k := 0; k < benchT; k++ {
								raw, err := os.ReadFile(frames.FramePath(fdir, w.Video, w.Start+k))
								if err != nil {
									return err
								}
								img, err := jpeg.Decode(bytes.NewReader(raw))
								if err != nil {
									return err
								}
								off := (c*benchT + k) * frame
								ToTensor(data[off:off+frame], img, res)
							}
							return nil
						})
					}
					if err := g.Wait(); err != nil {
						b.Fatal(err)
					}
				}
				reportClips(b, b.N*batch, cpu0)
			})
		}
	}
}

// BenchmarkFrameBytes: getting one frame's JPEG bytes, from a mapped shard
// versus reading its file (the I/O part alone, no decode).
func BenchmarkFrameBytes(b *testing.B) {
	fdir, sdir := benchFixture(b)
	ds, err := Open(sdir)
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	b.Run("shard", func(b *testing.B) {
		var n int64
		for i := 0; i < b.N; i++ {
			j, err := ds.FrameJPEG(fmt.Sprintf("video-%02d", i%benchVideos), 1+i%benchFrames)
			if err != nil {
				b.Fatal(err)
			}
			n += int64(len(j))
		}
		b.SetBytes(n / int64(b.N))
	})
	b.Run("file", func(b *testing.B) {
		var n int64
		for i := 0; i < b.N; i++ {
			j, err := os.ReadFile(frames.FramePath(fdir, fmt.Sprintf("video-%02d", i%benchVideos), 1+i%benchFrames))
			if err != nil {
				b.Fatal(err)
			}
			n += int64(len(j))
		}
		b.SetBytes(n / int64(b.N))
	})
}

// BenchmarkPack: pack throughput in MB/s of JPEG input.
func BenchmarkPack(b *testing.B) {
	fdir, _ := benchFixture(b)
	for _, comp := range []string{CompressionNone, CompressionZstd} {
		for _, workers := range benchWorkers() {
			b.Run(fmt.Sprintf("%s/workers=%d", comp, workers), func(b *testing.B) {
				var in int64
				for i := 0; i < b.N; i++ {
					out := b.TempDir()
					res, err := Pack(context.Background(), PackOptions{FramesDir: fdir, ShardBytes: 8 << 20, Compression: comp, Workers: workers}, DirOutput(out))
					if err != nil {
						b.Fatal(err)
					}
					in = res.InputBytes
				}
				b.SetBytes(in)
			})
		}
	}
}

// BenchmarkOpen: Open with SHA-256 verification of every shard, in MB/s.
func BenchmarkOpen(b *testing.B) {
	_, sdir := benchFixture(b)
	ix, err := ReadIndex(sdir)
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, s := range ix.Shards {
		total += s.Bytes
	}
	b.SetBytes(total)
	for i := 0; i < b.N; i++ {
		ds, err := Open(sdir)
		if err != nil {
			b.Fatal(err)
		}
		ds.Close()
	}
}

// cpuSeconds returns the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// reportClips reports clips/s (wall clock) and clips per CPU-second (what
// one free core would give, robust to other load on the machine).
func reportClips(b *testing.B, clips int, cpu0 float64) {
	b.ReportMetric(float64(clips)/b.Elapsed().Seconds(), "clips/s")
	if cpu := cpuSeconds() - cpu0; cpu > 0 {
		b.ReportMetric(float64(clips)/cpu, "clips/cpu-s")
	}
}

// BenchmarkDecodeFrame: one 512x512 frame, JPEG decode plus ToTensor, on
// one goroutine: the loader's unit of work.
func BenchmarkDecodeFrame(b *testing.B) {
	data := benchJPEG(1, 1)
	for _, res := range []int{0, 64, 256} {
		name := fmt.Sprintf("res=%d", res)
		if res == 0 {
			name = "decode-only"
		}
		b.Run(name, func(b *testing.B) {
			dst := make([]float32, 3*res*res)
			cpu0 := cpuSeconds()
			for i := 0; i < b.N; i++ {
				img, err := jpeg.Decode(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				if res > 0 {
					ToTensor(dst, img, res)
				}
			}
			if cpu := cpuSeconds() - cpu0; cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu, "frames/cpu-s")
			}
			b.ReportMetric(float64(len(data)), "jpeg-bytes")
		})
	}
}
