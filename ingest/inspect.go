package ingest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Options are the settings of Inspect. The trims, FPS and DropFirst should
// match the frames stage's params: they decide too_short and where the
// truncation check looks.
type Options struct {
	// FFprobe and FFmpeg name the programs ("" for "ffprobe" and "ffmpeg").
	FFprobe, FFmpeg string
	// TrimHead and TrimTail are the seconds the frames stage cuts, FPS its
	// output rate and DropFirst whether it deletes the first output frame.
	TrimHead, TrimTail, FPS float64
	DropFirst               bool
}

// DefaultOptions are the recipe's: 2 s trims, 5 fps, first frame dropped.
func DefaultOptions() Options {
	return Options{TrimHead: 2, TrimTail: 2, FPS: 5, DropFirst: true}
}

// ExpectedFrames is the number of frames the recipe yields for a video of
// duration seconds: round(fps*(duration-trimHead-trimTail)), minus the
// dropped first frame, never negative. ffmpeg's -r may yield one more.
func ExpectedFrames(duration, trimHead, trimTail, fps float64, dropFirst bool) int {
	n := int(math.Round(fps * (duration - trimHead - trimTail)))
	if dropFirst {
		n--
	}
	return max(n, 0)
}

// Inspect hashes and probes one file and returns its manifest row, with
// Status quarantined and a Reason when it is unusable (Reason duplicate is
// decided later, by MarkDuplicates). It returns an error only when ctx ends.
func Inspect(ctx context.Context, path string, o Options) (Video, error) {
	v := Video{Path: path, Status: StatusOK}
	quarantine := func(reason, msg string) (Video, error) {
		v.Status, v.Reason, v.Message = StatusQuarantined, reason, msg
		return v, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return quarantine(ReasonProbeFailed, err.Error())
	}
	v.Size = fi.Size()
	sum, err := HashFile(path)
	if err != nil {
		return quarantine(ReasonProbeFailed, err.Error())
	}
	v.SHA256, v.ID = sum, MakeID(sum)
	if v.Size == 0 {
		return quarantine(ReasonEmptyFile, "the file has zero bytes")
	}

	p, err := RunProbe(ctx, o.FFprobe, path)
	if err != nil {
		if ctx.Err() != nil {
			return v, ctx.Err()
		}
		var pe *ProbeError
		if errors.As(err, &pe) && pe.Message != "" {
			return quarantine(ReasonProbeFailed, pe.Message)
		}
		return quarantine(ReasonProbeFailed, err.Error())
	}
	v.Streams = len(p.Streams)
	v.Duration = p.Duration()
	s := p.VideoStream()
	if s == nil {
		return quarantine(ReasonNoVideoStream, fmt.Sprintf("%d streams (format %s), none is video", len(p.Streams), p.Format.FormatName))
	}
	v.Width, v.Height = s.Width, s.Height
	v.Rotation = s.Rotation()
	v.FPS = s.FPS()
	v.Codec, v.PixFmt = s.CodecName, s.PixFmt
	if s.ColorRange == "tv" || s.ColorRange == "pc" {
		v.ColorRange = s.ColorRange
	}
	if v.Codec == "" || v.Codec == "none" || v.Codec == "unknown" {
		return quarantine(ReasonUnsupported, fmt.Sprintf("ffprobe names no codec for video stream %d", s.Index))
	}
	if v.Duration <= 0 {
		return quarantine(ReasonProbeFailed, "ffprobe reports no duration")
	}
	if ExpectedFrames(v.Duration, o.TrimHead, o.TrimTail, o.FPS, o.DropFirst) < 1 {
		return quarantine(ReasonTooShort, fmt.Sprintf("duration %.3fs yields no frame after trimming %gs + %gs at %g fps",
			v.Duration, o.TrimHead, o.TrimTail, o.FPS))
	}
	// Decode one frame near the end of the part the frames stage reads: this
	// finds a missing decoder, and a file cut short whose index (at its
	// front) still promises the lost frames.
	at := math.Max(0, v.Duration-o.TrimTail-0.5)
	n, msg, err := decodeOne(ctx, o.FFmpeg, path, s.Index, at)
	switch {
	case ctx.Err() != nil:
		return v, ctx.Err()
	case err != nil && strings.Contains(msg, "Decoder (codec"):
		return quarantine(ReasonUnsupported, msg)
	case err != nil:
		return quarantine(ReasonUnsupported, fmt.Sprintf("ffmpeg cannot decode it (%v): %s", err, msg))
	case n == 0:
		m := fmt.Sprintf("no frame decodes at %.2fs of %.2fs: the file holds less than its index promises", at, v.Duration)
		if msg != "" {
			m += ": " + msg
		}
		return quarantine(ReasonTruncated, m)
	}
	return v, nil
}

// decodeOne decodes the first frame of stream index at or after the
// keyframe before at (seconds) and returns how many frames came out (0 or
// 1) and ffmpeg's stderr.
func decodeOne(ctx context.Context, ffmpeg, path string, index int, at float64) (int, string, error) {
	if ffmpeg == "" {
		ffmpeg = "ffmpeg"
	}
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error",
		"-ss", strconv.FormatFloat(at, 'f', 3, 64), "-noaccurate_seek", "-i", path,
		"-map", "0:"+strconv.Itoa(index), "-frames:v", "1", "-f", "framecrc", "-")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	n := 0
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n, toolMessage(stderr.String()), err
}

// HashFile returns the hex SHA-256 of a file's content.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("ingest: hash: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("ingest: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// MarkDuplicates quarantines every ok video whose content equals that of an
// earlier ok video (the first by path keeps status ok). It sorts videos by
// path in place and returns them.
func MarkDuplicates(videos []Video) []Video {
	sort.SliceStable(videos, func(i, j int) bool { return videos[i].Path < videos[j].Path })
	first := map[string]string{}
	for i := range videos {
		v := &videos[i]
		if !v.OK() {
			continue
		}
		if p, ok := first[v.SHA256]; ok {
			v.Status, v.Reason = StatusQuarantined, ReasonDuplicate
			v.Message = "same content as " + p
			continue
		}
		first[v.SHA256] = v.Path
	}
	return videos
}
