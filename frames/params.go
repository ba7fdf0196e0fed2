package frames

import (
	"fmt"
	"strconv"
)

// Params are the recipe's numbers. The zero value is not useful; start from
// DefaultParams.
type Params struct {
	// TrimHead and TrimTail are the seconds cut at the start and the end.
	TrimHead, TrimTail float64
	// FPS is the output frame rate (ffmpeg's output -r).
	FPS float64
	// Size is the side of the square output: the short side is scaled to
	// Size, then the centre Size x Size is cropped.
	Size int
	// JPEGQuality is ffmpeg's -q:v (0 in the recipe; 0 and 2 give the same
	// bytes with ffmpeg 5.1's mjpeg encoder).
	JPEGQuality int
	// DropFirst deletes the first output frame (the one at TrimHead).
	DropFirst bool
	// FFmpeg names the program ("" for "ffmpeg").
	FFmpeg string
	// DecodeThreads is the decoder's -threads in the first process (0: 1).
	// Output bytes do not depend on it.
	DecodeThreads int
}

// DefaultParams returns the recipe's params: 2 s trims, 5 fps, 512 px,
// -q 0, first frame dropped.
func DefaultParams() Params {
	return Params{TrimHead: 2, TrimTail: 2, FPS: 5, Size: 512, JPEGQuality: 0, DropFirst: true}
}

// Validate reports params that cannot make frames.
func (p Params) Validate() error {
	switch {
	case p.TrimHead < 0 || p.TrimTail < 0:
		return fmt.Errorf("frames: trims must not be negative (head %gs, tail %gs)", p.TrimHead, p.TrimTail)
	case !(p.FPS > 0):
		return fmt.Errorf("frames: fps %g must be positive", p.FPS)
	case p.Size < 2 || p.Size%2 != 0:
		return fmt.Errorf("frames: size %d must be even and at least 2", p.Size)
	case p.JPEGQuality < 0 || p.JPEGQuality > 31:
		return fmt.Errorf("frames: jpeg_quality %d out of range 0..31", p.JPEGQuality)
	}
	return nil
}

// Key returns the params that decide the frames' bytes, as one string for a
// cache fingerprint (FFmpeg and DecodeThreads are left out: the ffmpeg
// version enters separately, and threads do not change output).
func (p Params) Key() string {
	return fmt.Sprintf("trim_head=%s trim_tail=%s fps=%s size=%d q=%d drop_first=%t",
		ffNum(p.TrimHead), ffNum(p.TrimTail), ffNum(p.FPS), p.Size, p.JPEGQuality, p.DropFirst)
}

// ffNum formats seconds or a rate for an ffmpeg argument (microsecond
// precision, as ffmpeg parses durations).
func ffNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// ScaleCrop returns the recipe's video filter for size: scale the short side
// to size, keep the aspect, centre-crop size x size.
func ScaleCrop(size int) string {
	return fmt.Sprintf("scale='if(gt(iw,ih),-1,%[1]d)':'if(gt(iw,ih),%[1]d,-1)',crop=%[1]d:%[1]d:exact=1", size)
}
