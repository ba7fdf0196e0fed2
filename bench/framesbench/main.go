// Command framesbench times the frames stage's extraction (package frames)
// against the recipe's sequential shell loop and the decode floor on a set
// of synth videos, checks that the frames are byte-identical, and prints a
// table. bench/frames.sh builds and runs it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/timelapse-ml/pipeline/frames"
	"github.com/timelapse-ml/pipeline/ingest"
	"github.com/timelapse-ml/pipeline/synth"
)

// recipeLoop is the seed recipe's shell loop, verbatim but for the folder
// variables: one video after another, ffprobe, bc, ffmpeg, rm.
const recipeLoop = `set -e
for f in "$SRC"/*; do
  name=$(basename "$f"); name="${name%.*}"
  mkdir -p "$DST/$name"
  d=$(ffprobe -v error -show_entries format=duration -of default=noprint_wrappers=1:nokey=1 "$f")
  cut=$(echo "$d - 4" | bc)
  ffmpeg -nostdin -v error -i "$f" -ss 00:00:02.00 -t $cut -r 5 -vf "scale='if(gt(iw,ih),-1,512)':'if(gt(iw,ih),512,-1)',crop=512:512:exact=1" -q 0 -an "$DST/$name/%06d.jpg"
  rm "$DST/$name/000001.jpg"
done`

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "pipeline-bench-frames"), "work folder (videos are kept and reused)")
	count := flag.Int("videos", 16, "number of synth videos (mixed 1080p, 720p, portrait; 10-20 s)")
	workers := flag.Int("workers", 0, "frames workers (0: CPU count)")
	rounds := flag.Int("rounds", 1, "time each method this many times; the best is shown")
	flag.Parse()
	if err := run(context.Background(), *dir, *count, *workers, *rounds); err != nil {
		log.Fatal(err)
	}
}

// specs returns the benchmark set: a third each of 1920x1080 at 25 fps,
// 1280x720 at 30 fps and 720x1280 portrait at 25 fps, 10 to 20 s long.
func specs(n int) map[string]synth.Spec {
	out := map[string]synth.Spec{}
	for i := range n {
		s := synth.Spec{Seconds: float64(10 + (i*7)%11), FrozenHead: 2, FrozenTail: 2, Seed: int64(100 + i)}
		switch i % 3 {
		case 0:
			s.Width, s.Height, s.FPS = 1920, 1080, 25
		case 1:
			s.Width, s.Height, s.FPS = 1280, 720, 30
		case 2:
			s.Width, s.Height, s.FPS = 720, 1280, 25
		}
		out[fmt.Sprintf("v%02d-%dx%d.mp4", i, s.Width, s.Height)] = s
	}
	return out
}

func run(ctx context.Context, dir string, count, workers, rounds int) error {
	src := filepath.Join(dir, fmt.Sprintf("videos-%d", count))
	set := specs(count)
	var names []string
	for name := range set {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(src, name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		t0 := time.Now()
		if err := synth.Render(ctx, set[name], path); err != nil {
			return err
		}
		log.Printf("rendered %s in %v", name, time.Since(t0).Round(time.Millisecond))
	}

	// ingest: probe and hash (the stage before frames; timed for the record).
	t0 := time.Now()
	var srcs []frames.Source
	seconds := 0.0
	for _, name := range names {
		v, err := ingest.Inspect(ctx, filepath.Join(src, name), ingest.DefaultOptions())
		if err != nil {
			return err
		}
		if !v.OK() {
			return fmt.Errorf("%s: %s (%s)", name, v.Reason, v.Message)
		}
		seconds += v.Duration
		srcs = append(srcs, frames.SourceOf(v))
	}
	ingestTime := time.Since(t0)

	ver, err := frames.FFmpegVersion(ctx, "")
	if err != nil {
		return err
	}
	loopDir, oursDir := filepath.Join(dir, "loop"), filepath.Join(dir, "ours")
	best := map[string]time.Duration{} // wall time
	cpu := map[string]time.Duration{}  // user+system time of the ffmpeg (and shell) processes
	var ours []frames.Video
	for r := range rounds {
		for _, d := range []string{loopDir, oursDir} {
			if err := os.RemoveAll(d); err != nil {
				return err
			}
		}
		// The recipe's loop.
		cmd := exec.CommandContext(ctx, "bash", "-c", recipeLoop)
		cmd.Env = append(os.Environ(), "SRC="+src, "DST="+loopDir)
		cmd.Stderr = os.Stderr
		t, c := time.Now(), childCPU()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("recipe loop: %w", err)
		}
		loopTime := time.Since(t)
		keepBest(best, "loop", loopTime)
		keepBest(cpu, "loop", childCPU()-c)

		// The decode floor: decode each input up to duration-2 s, one
		// thread, two at a time.
		t, c = time.Now(), childCPU()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(2)
		for _, s := range srcs {
			g.Go(func() error {
				out, err := exec.CommandContext(gctx, "ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i", s.Path,
					"-t", strconv.FormatFloat(s.Duration-2, 'f', 6, 64), "-an", "-f", "null", "-").CombinedOutput()
				if err != nil {
					return fmt.Errorf("decode %s: %v: %s", s.Path, err, out)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		floorTime := time.Since(t)
		keepBest(best, "floor", floorTime)
		keepBest(cpu, "floor", childCPU()-c)

		// Ours.
		b := frames.Batch{Params: frames.DefaultParams(), Workers: workers, FFmpegVersion: ver}
		c = childCPU()
		rows, st, err := b.Run(ctx, oursDir, srcs)
		if err != nil {
			return err
		}
		keepBest(best, "ours", st.Elapsed)
		keepBest(cpu, "ours", childCPU()-c)
		ours = rows
		log.Printf("round %d: loop %.2fs, floor %.2fs, ours %.2fs", r+1, loopTime.Seconds(), floorTime.Seconds(), st.Elapsed.Seconds())
	}

	// Byte-identical?
	totalFrames, mismatches := 0, 0
	for i, v := range ours {
		name := strings.TrimSuffix(names[i], filepath.Ext(names[i]))
		if v.Status != frames.StatusOK {
			return fmt.Errorf("%s: %s: %s", name, v.Status, v.Message)
		}
		totalFrames += v.Frames
		for k := 1; ; k++ {
			want, err := os.ReadFile(filepath.Join(loopDir, name, frames.FrameName(k+1)))
			if errors.Is(err, os.ErrNotExist) {
				if k-1 != v.Frames {
					mismatches++
					log.Printf("%s: %d frames, the loop wrote %d", name, v.Frames, k-1)
				}
				break
			}
			if err != nil {
				return err
			}
			got, err := os.ReadFile(frames.FramePath(oursDir, v.ID, k))
			if err != nil || !bytes.Equal(got, want) {
				mismatches++
				log.Printf("%s frame %d differs (%v)", name, k, err)
				break
			}
		}
	}

	w := workers
	if w <= 0 {
		w = runtime.NumCPU()
	}
	fmt.Printf("\nframes benchmark: %d synth videos (%s of video), %d output frames; %d CPUs, frames workers %d; %s\n",
		len(srcs), time.Duration(seconds*float64(time.Second)).Round(time.Second), totalFrames, runtime.NumCPU(), w, ver)
	fmt.Printf("best of %d round(s) (wall and CPU minimum separately); ingest (probe+hash+tail check, sequential) took %.2f s\n\n", rounds, ingestTime.Seconds())
	fmt.Printf("| method | seconds | videos/s | frames/s | speed-up vs loop | x decode floor | CPU s | CPU x floor |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range []struct{ key, label string }{
		{"loop", "recipe shell loop (sequential)"},
		{"ours", "frames (two-process, " + strconv.Itoa(w) + " videos at a time)"},
		{"floor", "decode floor (-threads 1, 2 at a time, to -f null)"},
	} {
		s := best[m.key].Seconds()
		fmt.Printf("| %s | %.2f | %.2f | %.1f | %.2fx | %.2fx | %.1f | %.2fx |\n", m.label, s, float64(len(srcs))/s,
			float64(totalFrames)/s, best["loop"].Seconds()/s, s/best["floor"].Seconds(),
			cpu[m.key].Seconds(), cpu[m.key].Seconds()/cpu["floor"].Seconds())
	}
	if mismatches == 0 {
		fmt.Printf("\nframes: byte-identical to the loop's (%d frames in %d videos)\n", totalFrames, len(ours))
	} else {
		fmt.Printf("\nframes: %d videos DIFFER from the loop's\n", mismatches)
		return errors.New("frames differ from the recipe loop's")
	}
	return nil
}

// childCPU returns the user+system time of this process's finished
// children (and their finished children).
func childCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func keepBest(m map[string]time.Duration, k string, d time.Duration) {
	if old, ok := m[k]; !ok || d < old {
		m[k] = d
	}
}
