package synth

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
)

// cpuSeconds is the CPU time used so far by this process and its waited-for
// children (ffmpeg): a cost measure that other load on the machine does not
// inflate, unlike wall time.
func cpuSeconds() float64 {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// reportFrames reports wall-clock frames/s and CPU milliseconds per frame.
func reportFrames(b *testing.B, frames int, cpuStart float64) {
	b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric((cpuSeconds()-cpuStart)*1e3/float64(frames), "cpu-ms/frame")
}

// benchDefault is the spec of the synth stage's default set
// (stages/synth.go): 8 videos of 640x360 at 25 fps, 10 s each, H.264.
var benchDefault = Spec{Width: 640, Height: 360, FPS: 25, Seconds: 10, FrozenHead: 2, FrozenTail: 2, Seed: 1}

// BenchmarkRenderFrames measures the Go renderer alone (no encoding), all
// cores, in frames per second.
func BenchmarkRenderFrames(b *testing.B) {
	for _, sz := range [][2]int{{640, 360}, {1280, 720}, {96, 64}} {
		b.Run(fmt.Sprintf("%dx%d", sz[0], sz[1]), func(b *testing.B) {
			sp := benchDefault
			sp.Width, sp.Height = sz[0], sz[1]
			sc := newScene(sp.WithDefaults())
			buf := make([]byte, sz[0]*sz[1]*3)
			n := 0
			cpu := cpuSeconds()
			for b.Loop() {
				sc.renderFrame(buf, frameParams{t: float64(n) / 25, progress: 0.5}, 0)
				n++
			}
			reportFrames(b, b.N, cpu)
		})
	}
}

// BenchmarkRender measures one video rendered and encoded, in frames per
// second.
func BenchmarkRender(b *testing.B) {
	for _, codec := range []string{H264, VP9} {
		b.Run(codec, func(b *testing.B) {
			sp := benchDefault
			sp.Codec = codec
			dir := b.TempDir()
			cpu := cpuSeconds()
			for b.Loop() {
				if err := Render(context.Background(), sp, filepath.Join(dir, "v"+sp.Ext())); err != nil {
					b.Fatal(err)
				}
			}
			reportFrames(b, b.N*sp.Frames(), cpu)
		})
	}
}

// BenchmarkRenderSet measures whole sets in rendered+encoded frames per
// second, with one and two videos at a time: the stage's default set (8
// videos of 640x360, 25 fps, 10 s) and the embedded pipeline.yaml's (6 of
// 192x128, 10 fps, 10 s).
func BenchmarkRenderSet(b *testing.B) {
	// The embedded pipeline.yaml's synth stage (videos only, no faults).
	embedded := Spec{Width: 192, Height: 128, FPS: 10, Seconds: 10, FrozenHead: 2, FrozenTail: 2, Seed: 7}
	for _, c := range []struct {
		name    string
		count   int
		spec    Spec
		workers int
	}{
		{"default/workers=1", 8, benchDefault, 1},
		{"default/workers=2", 8, benchDefault, 2},
		{"pipeline.yaml/workers=1", 6, embedded, 1},
		{"pipeline.yaml/workers=2", 6, embedded, 2},
	} {
		b.Run(c.name, func(b *testing.B) {
			set := Set{Count: c.count, Spec: c.spec, Workers: c.workers}
			dir := b.TempDir()
			cpu := cpuSeconds()
			for b.Loop() {
				if _, err := RenderSet(context.Background(), set, dir); err != nil {
					b.Fatal(err)
				}
			}
			reportFrames(b, b.N*set.Count*set.Frames(), cpu)
		})
	}
}
