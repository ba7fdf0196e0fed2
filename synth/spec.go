package synth

import (
	"errors"
	"fmt"
	"math"
)

// Codecs accepted by Spec.Codec.
const (
	H264 = "h264" // H.264 in .mp4 (the default)
	VP9  = "vp9"  // VP9 in .webm
)

// Spec describes one video. Zero values take the defaults documented on each
// field (see WithDefaults).
type Spec struct {
	// Width and Height in pixels (default 640x360). Odd sizes are rejected
	// (4:2:0 chroma).
	Width, Height int
	// FPS is the frame rate (default 25).
	FPS float64
	// Seconds is the clip length (default 10).
	Seconds float64
	// FrozenHead and FrozenTail are the seconds at the start and end whose
	// frames are all identical (no motion, no light change). Zero means none;
	// the stage's defaults are 2 each.
	FrozenHead, FrozenTail float64
	// Codec is H264 (.mp4, default) or VP9 (.webm).
	Codec string
	// PixFmt is the encoded pixel format: "" means yuv420p;
	// "yuv420p10le" gives 10-bit video.
	PixFmt string
	// Rotate is a display rotation in degrees (0, 90, 180 or 270) written as
	// container metadata (an MP4 display matrix; H.264 only); the stored
	// frames are not rotated. ffprobe 5.1 shows it as stream side data
	// "Display Matrix" whose rotation equals Rotate modulo 360 (90 -> 90,
	// 270 -> -90).
	Rotate int
	// VFR makes timestamps variable: some frames are held for two or three
	// frame intervals, so the stream has fewer frames than Seconds*FPS and
	// irregular gaps between timestamps.
	VFR bool
	// Seed selects the scene: landscape, wind, cloud field and light.
	Seed int64
}

// Defaults used by WithDefaults.
const (
	DefaultWidth   = 640
	DefaultHeight  = 360
	DefaultFPS     = 25
	DefaultSeconds = 10
)

// WithDefaults returns s with zero fields replaced by their defaults.
func (s Spec) WithDefaults() Spec {
	if s.Width == 0 {
		s.Width = DefaultWidth
	}
	if s.Height == 0 {
		s.Height = DefaultHeight
	}
	if s.FPS == 0 {
		s.FPS = DefaultFPS
	}
	if s.Seconds == 0 {
		s.Seconds = DefaultSeconds
	}
	if s.Codec == "" {
		s.Codec = H264
	}
	if s.PixFmt == "" {
		s.PixFmt = "yuv420p"
	}
	return s
}

// Validate reports the first problem with s (after WithDefaults).
func (s Spec) Validate() error {
	s = s.WithDefaults()
	switch {
	case s.Width < 16 || s.Height < 16 || s.Width > 8192 || s.Height > 8192:
		return fmt.Errorf("synth: size %dx%d out of range 16..8192", s.Width, s.Height)
	case s.Width%2 != 0 || s.Height%2 != 0:
		return fmt.Errorf("synth: size %dx%d must be even for %s", s.Width, s.Height, s.PixFmt)
	case !(s.FPS > 0 && s.FPS <= 240):
		return fmt.Errorf("synth: fps %g out of range (0, 240]", s.FPS)
	case !(s.Seconds > 0) || math.IsInf(s.Seconds, 0):
		return fmt.Errorf("synth: seconds %g must be positive", s.Seconds)
	case s.FrozenHead < 0 || s.FrozenTail < 0:
		return errors.New("synth: frozen seconds must not be negative")
	case s.FrozenHead+s.FrozenTail > s.Seconds:
		return fmt.Errorf("synth: frozen head %gs + tail %gs exceed the clip's %gs", s.FrozenHead, s.FrozenTail, s.Seconds)
	case s.Codec != H264 && s.Codec != VP9:
		return fmt.Errorf("synth: codec %q: want %q or %q", s.Codec, H264, VP9)
	case s.PixFmt != "yuv420p" && s.PixFmt != "yuv420p10le":
		return fmt.Errorf("synth: pixel format %q: want yuv420p or yuv420p10le", s.PixFmt)
	case s.Rotate != 0 && s.Rotate != 90 && s.Rotate != 180 && s.Rotate != 270:
		return fmt.Errorf("synth: rotate %d: want 0, 90, 180 or 270", s.Rotate)
	case s.Rotate != 0 && s.Codec != H264:
		return fmt.Errorf("synth: rotate needs codec %q (ffmpeg 5.1 writes no rotation into WebM)", H264)
	}
	return nil
}

// Ext returns the file extension for the spec's codec: ".mp4" or ".webm".
func (s Spec) Ext() string {
	if s.WithDefaults().Codec == VP9 {
		return ".webm"
	}
	return ".mp4"
}

// Frames returns the number of frame intervals in the clip,
// round(Seconds*FPS). With VFR fewer frames are written, spanning the same
// duration.
func (s Spec) Frames() int {
	s = s.WithDefaults()
	return int(math.Round(s.Seconds * s.FPS))
}
