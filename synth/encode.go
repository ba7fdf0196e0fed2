package synth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	ffmpeg "github.com/u2takey/ffmpeg-go"
)

// FFmpeg is the ffmpeg executable used to encode ("ffmpeg" from PATH unless
// changed).
var FFmpeg = "ffmpeg"

// encoderArgs builds the ffmpeg command line that reads raw rgb24 frames of
// spec from stdin and writes the encoded video to out. It is built with
// ffmpeg-go; GetArgs is used rather than Compile because Compile logs through
// a package-global switch that other packages may flip concurrently.
//
// Frozen spans decode to identical frames by construction. H.264: a keyframe
// starts each span and the rest of the span is coded at QP 51 (an x264 zone),
// where every macroblock of an unchanged picture is skipped, and skipped
// blocks are copied exactly (no deblocking between them). VP9 has no such
// control (libvpx loop-filters even skipped blocks), so VP9 is encoded
// lossless.
func encoderArgs(spec Spec, pl plan, out string) []string {
	in := ffmpeg.Input("pipe:0", ffmpeg.KwArgs{
		"f":         "rawvideo",
		"pix_fmt":   "rgb24",
		"s":         fmt.Sprintf("%dx%d", spec.Width, spec.Height),
		"framerate": formatFloat(spec.FPS),
	})
	kw := ffmpeg.KwArgs{
		"pix_fmt":          spec.PixFmt,
		"threads":          "1", // one encoder thread: bit-exact output
		"an":               "",
		"g":                strconv.Itoa(spec.Frames() + 1), // keyframes only where forced
		"sc_threshold":     "0",
		"force_key_frames": pl.keyTimes(spec.FPS),
	}
	switch spec.Codec {
	case VP9:
		kw["f"] = "webm"
		kw["c:v"] = "libvpx-vp9"
		kw["deadline"] = "realtime" // lossless either way; 3.6x faster than good/5,
		kw["cpu-used"] = "8"        // files about a third bigger
		kw["row-mt"] = "0"
		kw["lossless"] = "1"
		kw["fflags"] = "+bitexact" // else Matroska writes a random segment UID
	default:
		kw["f"] = "mp4"
		kw["c:v"] = "libx264"
		kw["preset"] = "veryfast"
		kw["crf"] = "20"
		if z := pl.zones(); z != "" {
			kw["x264-params"] = "zones=" + z
		}
	}
	if spec.Rotate != 0 {
		kw["metadata:s:v:0"] = "rotate=" + strconv.Itoa(spec.Rotate)
	}
	if spec.VFR {
		kw["vf"] = pl.selectFilter()
		kw["fps_mode"] = "vfr"
	}
	return in.Output(out, kw).
		GlobalArgs("-hide_banner", "-nostats", "-loglevel", "error").
		OverWriteOutput().
		GetArgs()
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// rotateArgs remuxes in to out (MP4) with a display matrix rotating by deg.
func rotateArgs(in, out string, deg int) []string {
	return ffmpeg.Input(in).
		Output(out, ffmpeg.KwArgs{"map": "0", "c": "copy", "f": "mp4", "metadata:s:v:0": "rotate=" + strconv.Itoa(deg)}).
		GlobalArgs("-hide_banner", "-nostats", "-loglevel", "error").
		OverWriteOutput().
		GetArgs()
}

// runFFmpeg runs ffmpeg with args under ctx; its error carries ffmpeg's
// stderr.
func runFFmpeg(ctx context.Context, args []string) error {
	cmd := exec.CommandContext(ctx, FFmpeg, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ffmpegError(err, &stderr)
	}
	return nil
}

func ffmpegError(err error, stderr *bytes.Buffer) error {
	msg := strings.TrimSpace(stderr.String())
	if len(msg) > 2000 {
		msg = "..." + msg[len(msg)-2000:]
	}
	return fmt.Errorf("ffmpeg: %w: %s", err, msg)
}

// encoder is a running ffmpeg process fed raw frames.
type encoder struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *bytes.Buffer
}

func startEncoder(ctx context.Context, spec Spec, pl plan, out string) (*encoder, error) {
	args := encoderArgs(spec, pl, out)
	cmd := exec.CommandContext(ctx, FFmpeg, args...)
	e := &encoder{cmd: cmd, stderr: new(bytes.Buffer)}
	cmd.Stderr = e.stderr
	var err error
	if e.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("synth: ffmpeg stdin: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("synth: start %s: %w", FFmpeg, err)
	}
	return e, nil
}

// wait closes stdin and waits for ffmpeg; its error carries ffmpeg's stderr.
func (e *encoder) wait(ctx context.Context) error {
	e.stdin.Close()
	err := e.cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return ffmpegError(err, e.stderr)
	}
	return nil
}

var errEncoderGone = errors.New("ffmpeg stopped reading frames")
