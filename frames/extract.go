package frames

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/timelapse-ml/pipeline/ingest"
)

// Result is what Extract made of one video.
type Result struct {
	// Frames is the number of JPEGs written, numbered 1..Frames.
	Frames int
	// Expected is the count the video's duration promises (ExpectedFrames).
	Expected int
	// Damaged is set when ffmpeg reported an error, failed, or wrote a
	// frame count more than one away from Expected; Message says why.
	Damaged bool
	Message string
}

// ExpectedFrames is the frame count a video of duration seconds should
// yield (ingest.ExpectedFrames with these params).
func (p Params) ExpectedFrames(duration float64) int {
	return ingest.ExpectedFrames(duration, p.TrimHead, p.TrimTail, p.FPS, p.DropFirst)
}

// Extract writes the recipe's frames of src into dir (created; it should not
// exist or be empty) as 000001.jpg, 000002.jpg, ... It runs two ffmpeg
// processes joined by a pipe, both under ctx, so cancelling ctx kills them.
// A video that ffmpeg fails on or that yields the wrong number of frames is
// not an error: the Result says Damaged. The error is for a cancelled ctx, a
// missing ffmpeg, or a file system failure.
func Extract(ctx context.Context, src Source, p Params, dir string) (Result, error) {
	res := Result{Expected: p.ExpectedFrames(src.Duration)}
	if err := p.Validate(); err != nil {
		return res, err
	}
	if src.Duration-p.TrimHead-p.TrimTail <= 0 {
		res.Damaged = true
		res.Message = fmt.Sprintf("duration %.3fs is shorter than the trims", src.Duration)
		return res, os.MkdirAll(dir, 0o755)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("frames %s: %w", src.ID, err)
	}
	first := 1
	if p.DropFirst {
		first = 0
	}
	dec := decodeCmd(ctx, src, p)
	enc := encodeCmd(ctx, src, p, dir, first)
	var decErr, encErr tailBuffer
	dec.Stderr, enc.Stderr = &decErr, &encErr
	dec.WaitDelay, enc.WaitDelay = 5*time.Second, 5*time.Second

	// The frames flow between the processes through an OS pipe; this
	// process holds neither end once both have started, so nothing here can
	// block on it, and a killed process closes its end for the other.
	pr, pw, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("frames %s: pipe: %w", src.ID, err)
	}
	growPipe(pw)
	dec.Stdout, enc.Stdin = pw, pr
	if err := enc.Start(); err != nil {
		pr.Close()
		pw.Close()
		return res, fmt.Errorf("frames %s: start ffmpeg: %w", src.ID, err)
	}
	pr.Close()
	if err := dec.Start(); err != nil {
		pw.Close()
		_ = enc.Wait()
		return res, fmt.Errorf("frames %s: start ffmpeg: %w", src.ID, err)
	}
	pw.Close()
	derr := dec.Wait()
	eerr := enc.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	if p.DropFirst {
		if err := os.Remove(filepath.Join(dir, FrameName(0))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("frames %s: %w", src.ID, err)
		}
	}
	n, err := countFrames(dir)
	if err != nil {
		return res, fmt.Errorf("frames %s: %w", src.ID, err)
	}
	res.Frames = n

	var why []string
	if derr != nil {
		why = append(why, fmt.Sprintf("decoding ffmpeg: %v", derr))
	}
	if eerr != nil {
		why = append(why, fmt.Sprintf("encoding ffmpeg: %v", eerr))
	}
	if n < res.Expected-1 || n > res.Expected+1 {
		why = append(why, fmt.Sprintf("%d frames, expected %d", n, res.Expected))
	}
	if s := decErr.String(); s != "" {
		why = append(why, s)
	}
	if s := encErr.String(); s != "" {
		why = append(why, s)
	}
	if len(why) > 0 {
		res.Damaged = true
		res.Message = strings.Join(why, "; ")
	}
	return res, nil
}

// countFrames checks that dir holds exactly 000001.jpg..N.jpg (N may be 0)
// and returns N.
func countFrames(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".jpg") {
			n++
		}
	}
	for i := 1; i <= n; i++ {
		if _, err := os.Stat(filepath.Join(dir, FrameName(i))); err != nil {
			return 0, fmt.Errorf("frames not numbered 1..%d: %w", n, err)
		}
	}
	return n, nil
}

// tailBuffer keeps the last 4 KiB written to it: a bounded stderr capture.
type tailBuffer struct{ b []byte }

const tailMax = 4096

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > tailMax {
		t.b = append(t.b[:0], t.b[len(t.b)-tailMax:]...)
	}
	return len(p), nil
}

// String returns the captured text on one line (see ingest.ToolMessage).
func (t *tailBuffer) String() string { return ingest.ToolMessage(string(t.b), 1000) }
