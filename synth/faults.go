package synth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
	ffmpeg "github.com/u2takey/ffmpeg-go"
)

// FaultKind names what a fault file is.
type FaultKind string

// The fault files. All but FaultOddName must be quarantined by ingest.
const (
	FaultEmpty         FaultKind = "empty"          // zero bytes
	FaultTruncated     FaultKind = "truncated"      // a video cut short: an MP4 loses its index; a WebM keeps its header, loses frames
	FaultTruncatedFast FaultKind = "truncated_fast" // faststart MP4 cut short: index intact, most frames missing
	FaultTooShort      FaultKind = "too_short"      // a valid clip shorter than the two 2 s trims together
	FaultAudioOnly     FaultKind = "audio_only"     // a valid file with no video stream
	FaultNotVideo      FaultKind = "not_video"      // a text file with a video extension
	FaultOddName       FaultKind = "odd_name"       // a GOOD video with spaces and non-ASCII in its name
)

// TooShortSeconds is the length of the FaultTooShort clip: longer than one
// 2 s trim, shorter than both.
const TooShortSeconds = 3.0

// truncateFraction is the share of bytes the truncated faults keep.
const truncateFraction = 0.4

// Fault is one fault file: its file name, what it is, and whether ingest
// should accept it (only the oddly named good video).
type Fault struct {
	Name   string
	Kind   FaultKind
	What   string
	Accept bool
}

// OddName is the base name (without extension) of the good video with an
// awkward name.
const OddName = "good clip – été 日本"

// Faults lists the fault files WriteFaults writes for spec, in a fixed order.
// Names start with "fault-" and name the kind, except the oddly named good
// video (OddName + spec.Ext()). The truncated faststart video and the
// audio-only file are always MP4.
func Faults(spec Spec) []Fault {
	ext := spec.Ext()
	truncWhat := "MP4 truncated to 40% of its bytes: the index (moov, at the end) is lost"
	if spec.WithDefaults().Codec == VP9 {
		truncWhat = "WebM truncated to 40% of its bytes: the header claims the full duration, most frames are missing"
	}
	return []Fault{
		{Name: "fault-empty" + ext, Kind: FaultEmpty, What: "zero-byte file"},
		{Name: "fault-truncated" + ext, Kind: FaultTruncated, What: truncWhat},
		{Name: "fault-truncated-faststart.mp4", Kind: FaultTruncatedFast, What: "faststart H.264 MP4 truncated to 40%: index intact, frames missing"},
		{Name: "fault-too-short" + ext, Kind: FaultTooShort, What: fmt.Sprintf("valid %g s clip, shorter than both trims", TooShortSeconds)},
		{Name: "fault-audio-only.mp4", Kind: FaultAudioOnly, What: "AAC audio in MP4, no video stream"},
		{Name: "fault-not-video" + ext, Kind: FaultNotVideo, What: "a text file with a video extension"},
		{Name: OddName + ext, Kind: FaultOddName, What: "a good video whose name has spaces and non-ASCII characters", Accept: true},
	}
}

// faultSpec is the video spec behind the video-based faults: the set's spec
// with a seed of its own.
func faultSpec(spec Spec, k FaultKind) Spec {
	spec = spec.WithDefaults()
	spec.Seed = VideoSeed(spec.Seed, -1-len(k)*31-int(k[0]))
	spec.Rotate, spec.VFR = 0, false
	return spec
}

// WriteFault writes one fault file to path, atomically.
func WriteFault(ctx context.Context, f Fault, spec Spec, path string) error {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	vs := faultSpec(spec, f.Kind)
	var err error
	switch f.Kind {
	case FaultEmpty:
		err = atomicfile.WriteFile(path, nil)
	case FaultNotVideo:
		err = atomicfile.WriteFile(path, []byte("This is not a video. It is a text file named like one, as real folders hold.\n"))
	case FaultOddName:
		err = Render(ctx, vs, path)
	case FaultTooShort:
		vs.Seconds = TooShortSeconds
		vs.FrozenHead, vs.FrozenTail = min(vs.FrozenHead, 1), min(vs.FrozenTail, 1)
		err = Render(ctx, vs, path)
	case FaultTruncated:
		err = truncated(ctx, vs, path, false)
	case FaultTruncatedFast:
		vs.Codec, vs.PixFmt = H264, "yuv420p"
		err = truncated(ctx, vs, path, true)
	case FaultAudioOnly:
		err = audioOnly(ctx, vs.Seconds, path)
	default:
		err = fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	if err != nil {
		return fmt.Errorf("synth: fault %s: %w", f.Name, err)
	}
	return nil
}

// truncated renders a good video (with the index moved to the front when
// faststart) and keeps the first 40% of its bytes.
func truncated(ctx context.Context, spec Spec, path string, faststart bool) error {
	full := tempPath(path)
	defer os.Remove(full)
	if err := Render(ctx, spec, full); err != nil {
		return err
	}
	if faststart {
		fs := tempPath(path)
		defer os.Remove(fs)
		args := ffmpeg.Input(full).
			Output(fs, ffmpeg.KwArgs{"map": "0", "c": "copy", "f": "mp4", "movflags": "+faststart"}).
			GlobalArgs("-hide_banner", "-nostats", "-loglevel", "error").
			OverWriteOutput().GetArgs()
		if err := runFFmpeg(ctx, args); err != nil {
			return err
		}
		full = fs
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data[:int(float64(len(data))*truncateFraction)])
}

// audioOnly writes an MP4 holding a sine tone in AAC and no video.
func audioOnly(ctx context.Context, seconds float64, path string) error {
	tmp := tempPath(path)
	args := ffmpeg.Input(fmt.Sprintf("sine=frequency=440:sample_rate=44100:duration=%s", formatFloat(seconds)), ffmpeg.KwArgs{"f": "lavfi"}).
		Output(tmp, ffmpeg.KwArgs{"c:a": "aac", "b:a": "64k", "f": "mp4"}).
		GlobalArgs("-hide_banner", "-nostats", "-loglevel", "error").
		OverWriteOutput().GetArgs()
	if err := runFFmpeg(ctx, args); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := atomicfile.Publish(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// WriteFaults writes every fault file of Faults(spec) into dir and returns
// file name -> what it is.
func WriteFaults(ctx context.Context, dir string, spec Spec) (map[string]string, error) {
	out := make(map[string]string)
	for _, f := range Faults(spec) {
		if err := WriteFault(ctx, f, spec, filepath.Join(dir, f.Name)); err != nil {
			return out, err
		}
		out[f.Name] = f.What
	}
	return out, nil
}
