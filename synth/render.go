package synth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// Render renders the video described by spec to path, atomically: ffmpeg
// writes a temporary file beside path (named ".tmp-..."), renamed onto path
// on success and removed on failure. The container follows spec.Codec
// whatever the extension of path.
func Render(ctx context.Context, spec Spec, path string) error {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	tmp := tempPath(path)
	err := encode(ctx, spec, tmp)
	if err == nil && spec.Rotate != 0 {
		// ffmpeg 5.1 writes a display matrix only when stream-copying.
		enc := tmp
		tmp = tempPath(path)
		err = runFFmpeg(ctx, rotateArgs(enc, tmp, spec.Rotate))
		os.Remove(enc)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("synth: render %s: %w", filepath.Base(path), err)
	}
	if err := atomicfile.Publish(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// tempPath returns a fresh temporary name beside path, starting with
// atomicfile.TempPrefix (the engine's temporary prefix) and keeping the
// extension (ffmpeg picks the container from it).
func tempPath(path string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	base := filepath.Base(path)
	return filepath.Join(filepath.Dir(path), atomicfile.TempPrefix+hex.EncodeToString(b[:])+"-"+base)
}

// clock maps frame i of spec to the scene's motion clock: frozen spans hold
// it at the start or end of the motion.
func clock(spec Spec, i int) frameParams {
	t := float64(i) / spec.FPS
	motion := spec.Seconds - spec.FrozenHead - spec.FrozenTail
	m := math.Min(math.Max(t-spec.FrozenHead, 0), motion)
	p := 0.0
	if motion > 0 {
		p = m / motion
	}
	return frameParams{t: m, progress: p}
}

// encode renders every frame and pipes it to ffmpeg. Rendering the next
// frame overlaps with ffmpeg encoding the last one: a writer goroutine owns
// the pipe, and buffers cycle between it and the renderer.
func encode(ctx context.Context, spec Spec, out string) error {
	sc := newScene(spec)
	pl := newPlan(spec)
	enc, err := startEncoder(ctx, spec, pl, out)
	if err != nil {
		return err
	}
	size := spec.Width * spec.Height * 3
	const nbuf = 3
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, size)
	}
	full := make(chan []byte, nbuf)
	werr := make(chan error, 1)
	stop := make(chan struct{}) // closed when ffmpeg stops reading
	go func() {
		var err error
		for buf := range full {
			if err == nil {
				if _, err = enc.stdin.Write(buf); err != nil {
					err = fmt.Errorf("%w: %v", errEncoderGone, err)
					close(stop)
				}
			}
			free <- buf
		}
		werr <- err
	}()

	var last []byte // the previous frame, for frozen spans
	var lastT frameParams
	n := spec.Frames()
	var rerr error
frames:
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			rerr = err
			break
		}
		select {
		case <-stop:
			break frames // ffmpeg failed; its error is reported below
		default:
		}
		fp := clock(spec, i)
		buf := <-free
		if last != nil && fp == lastT {
			copy(buf, last)
		} else {
			sc.renderFrame(buf, fp, 0)
		}
		full <- buf
		last, lastT = buf, fp
	}
	close(full)
	wErr := <-werr
	eErr := enc.wait(ctx)
	switch {
	case rerr != nil:
		return rerr
	case eErr != nil:
		return eErr
	}
	return wErr
}
