package frames

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"

	ffmpeg "github.com/u2takey/ffmpeg-go"

	"github.com/timelapse-ml/pipeline/ingest"
)

// ffmpeg-go logs every compiled command through the standard logger unless
// this package-level switch is off. It is set once here, before any
// goroutine can call Compile, so it is never written concurrently.
func init() { ffmpeg.LogCompiledCommand = false }

// Source is one video to extract.
type Source struct {
	// ID names the output folder; Path is the video file; SHA256 its
	// content hash (for the cache fingerprint).
	ID, Path, SHA256 string
	// Duration is the video's duration in seconds (ffprobe's format duration).
	Duration float64
	// ColorRange is ffprobe's color_range of the video stream: "tv", "pc"
	// or "" (unknown). The raw frames between the two ffmpeg processes do not
	// carry it, so the second process is told.
	ColorRange string
	// Width and Height are the coded size (0 if unknown); with Duration they
	// estimate the decoding cost, to start the costliest videos first.
	Width, Height int
}

// cost estimates the work of extracting src: the pixels decoded.
func (s Source) cost() float64 { return s.Duration * float64(max(s.Width*s.Height, 1)) }

// Cut returns the seconds of video the recipe keeps: Duration minus both
// trims (the recipe's `d - 4`), formatted as the recipe's bc prints it.
func (p Params) Cut(duration float64) string {
	return strconv.FormatFloat(duration-p.TrimHead-p.TrimTail, 'f', 6, 64)
}

// decodeCmd builds the first process: decode src, apply the display
// rotation, keep [TrimHead, TrimHead+cut) and choose frames at FPS with the
// recipe's output -r semantics (constant frame rate), and write them raw in
// NUT to stdout. Only the kept frames reach the (costly) scaler.
func decodeCmd(ctx context.Context, src Source, p Params) *exec.Cmd {
	threads := max(p.DecodeThreads, 1)
	s := ffmpeg.Input(src.Path, ffmpeg.KwArgs{"threads": strconv.Itoa(threads)}).
		Output("pipe:1", ffmpeg.KwArgs{
			"ss":       ffNum(p.TrimHead),
			"t":        p.Cut(src.Duration),
			"r":        ffNum(p.FPS),
			"fps_mode": "cfr",
			"an":       "",
			"sn":       "",
			"dn":       "",
			"c:v":      "rawvideo",
			"format":   "nut",
		}).
		GlobalArgs("-nostdin", "-v", "error")
	return compile(ctx, s, p)
}

// encodeCmd builds the second process: read the NUT frames from stdin,
// scale and crop with the recipe's filter, and write JPEGs numbered from
// first into dir.
func encodeCmd(ctx context.Context, src Source, p Params, dir string, first int) *exec.Cmd {
	in := ffmpeg.KwArgs{"format": "nut"}
	if src.ColorRange == "tv" || src.ColorRange == "pc" {
		in["color_range"] = src.ColorRange
	}
	s := ffmpeg.Input("pipe:0", in).
		Output(filepath.Join(dir, "%06d.jpg"), ffmpeg.KwArgs{
			"vf":           ScaleCrop(p.Size),
			"q:v":          strconv.Itoa(p.JPEGQuality),
			"fps_mode":     "passthrough",
			"start_number": strconv.Itoa(first),
			"format":       "image2",
		}).
		GlobalArgs("-nostdin", "-v", "error")
	return compile(ctx, s, p)
}

// compile turns an ffmpeg-go stream into a command bound to ctx: the
// stream's context is replaced before Compile (ffmpeg-go keeps -y and pipes
// in context values, none of which are used here), so cancelling ctx kills
// the process.
func compile(ctx context.Context, s *ffmpeg.Stream, p Params) *exec.Cmd {
	if p.FFmpeg != "" {
		s = s.SetFfmpegPath(p.FFmpeg)
	}
	s.Context = ctx
	return s.Compile()
}

// Args returns the two command lines Extract runs for src (for logs and
// --explain).
func Args(src Source, p Params, dir string) (decode, encode []string) {
	first := 1
	if p.DropFirst {
		first = 0
	}
	return decodeCmd(context.Background(), src, p).Args, encodeCmd(context.Background(), src, p, dir, first).Args
}

// SourceOf returns the Source of an ingest manifest row.
func SourceOf(v ingest.Video) Source {
	return Source{ID: v.ID, Path: v.Path, SHA256: v.SHA256, Duration: v.Duration, ColorRange: v.ColorRange,
		Width: v.Width, Height: v.Height}
}
