package frames

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/timelapse-ml/pipeline/synth"
)

// TestDamagedTruncatedFaststart: ffmpeg exits 0 on a faststart MP4 cut
// short and writes fewer frames; Extract must flag it, and Batch must drop
// or keep its frames as asked.
func TestDamagedTruncatedFaststart(t *testing.T) {
	fixtures(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "cut.mp4")
	spec := synth.Spec{Width: 160, Height: 96, FPS: 10, Seconds: 8, FrozenHead: 2, FrozenTail: 2, Seed: 11}
	f := synth.Fault{Name: "cut.mp4", Kind: synth.FaultTruncatedFast}
	if err := synth.WriteFault(context.Background(), f, spec, path); err != nil {
		t.Fatal(err)
	}
	// ingest quarantines this file; frames must not trust it either.
	src := Source{ID: "cut", Path: path, SHA256: "x", Duration: 8}
	res, err := Extract(context.Background(), src, DefaultParams(), filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Damaged || res.Expected != 19 || res.Frames >= 18 {
		t.Fatalf("result %+v: want damaged with fewer than 18 of 19 frames", res)
	}
	if !strings.Contains(res.Message, "expected 19") {
		t.Errorf("message %q does not give the frame counts", res.Message)
	}
	t.Logf("damaged: %d of %d frames: %s", res.Frames, res.Expected, res.Message)

	for _, keep := range []bool{false, true} {
		out := filepath.Join(dir, "batch", map[bool]string{false: "drop", true: "keep"}[keep])
		rows, _, err := Batch{Params: DefaultParams(), KeepDamaged: keep, Workers: 1}.Run(context.Background(), out, []Source{src})
		if err != nil {
			t.Fatal(err)
		}
		v := rows[0]
		if v.Status != StatusDamaged || v.Message == "" {
			t.Errorf("keep=%v: row %+v, want damaged with a message", keep, v)
		}
		jpgs, _ := filepath.Glob(filepath.Join(out, "cut", "*.jpg"))
		if keep && (v.Frames != res.Frames || len(jpgs) != res.Frames) {
			t.Errorf("keep: row says %d frames, folder holds %d, want %d", v.Frames, len(jpgs), res.Frames)
		}
		if !keep && (v.Frames != 0 || len(jpgs) != 0) {
			t.Errorf("drop: row says %d frames, folder holds %d, want 0", v.Frames, len(jpgs))
		}
	}
}

// TestCancelKillsFFmpeg cancels an extraction midway: the source is a FIFO
// fed half a video and then left open, so both ffmpeg processes are running
// and blocked when the context is cancelled. Extract returns the context's
// error promptly, no ffmpeg process is left, and Batch leaves nothing under
// the output folder.
func TestCancelKillsFFmpeg(t *testing.T) {
	vdir := fixtures(t)
	data, err := os.ReadFile(filepath.Join(vdir, "vp9.webm"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "stalled-source.webm")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		w.Write(data[:len(data)/2])
		time.Sleep(10 * time.Second) // stall with the pipe open
	}()
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(500*time.Millisecond, func() {
		if len(processesWith(t, dir)) == 0 {
			t.Error("ffmpeg was not running when the context was cancelled")
		}
		cancel()
	})
	defer timer.Stop()
	src := Source{ID: "stalled", Path: fifo, SHA256: "y", Duration: 5}
	start := time.Now()
	_, _, err = Batch{Params: DefaultParams(), Workers: 1}.Run(ctx, filepath.Join(dir, "out"), []Source{src})
	took := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took > 3*time.Second {
		t.Errorf("cancel took %v to return", took)
	}
	if left := processesWith(t, dir); len(left) > 0 {
		t.Errorf("ffmpeg still running after cancel: %v", left)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "out"))
	for _, e := range ents {
		t.Errorf("left in the output folder after cancel: %s", e.Name())
	}
}

// processesWith lists the pids whose command line mentions s.
func processesWith(t *testing.T, s string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil || len(procs) == 0 {
		t.Skip("no /proc")
	}
	var out []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
