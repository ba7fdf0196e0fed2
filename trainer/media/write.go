package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/timelapse-ml/pipeline/internal/atomicfile"
)

// Options control GIF and MP4 output. Zero values mean 8 fps and scale 1.
type Options struct {
	// FPS is the playback rate.
	FPS float64
	// Scale enlarges every frame by this integer factor (nearest neighbour).
	Scale int
}

func (o Options) fps() float64 {
	if o.FPS <= 0 {
		return 8
	}
	return o.FPS
}

func prepare(frames []*image.RGBA, scale int) ([]*image.RGBA, error) {
	if len(frames) == 0 {
		return nil, errors.New("media: no frames")
	}
	b0 := frames[0].Bounds()
	out := make([]*image.RGBA, len(frames))
	for i, f := range frames {
		if f.Bounds().Dx() != b0.Dx() || f.Bounds().Dy() != b0.Dy() {
			return nil, fmt.Errorf("media: frame %d is %v, frame 0 is %v", i, f.Bounds().Size(), b0.Size())
		}
		out[i] = Upscale(f, scale)
	}
	return out, nil
}

// WriteGIF writes an endlessly looping animated GIF with one global palette.
func WriteGIF(path string, frames []*image.RGBA, opt Options) error {
	fr, err := prepare(frames, opt.Scale)
	if err != nil {
		return fmt.Errorf("gif %s: %w", path, err)
	}
	q := newQuantizer(medianCut(fr, 256))
	delay := max(2, int(math.Round(100/opt.fps())))
	anim := &gif.GIF{LoopCount: 0, Config: image.Config{ColorModel: q.pal, Width: fr[0].Rect.Dx(), Height: fr[0].Rect.Dy()}}
	for _, f := range fr {
		anim.Image = append(anim.Image, q.paletted(f))
		anim.Delay = append(anim.Delay, delay)
		anim.Disposal = append(anim.Disposal, gif.DisposalNone)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, anim); err != nil {
		return fmt.Errorf("gif %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// WriteMP4 encodes the frames as H.264 (yuv420p, playable everywhere) with
// ffmpeg, feeding raw RGBA frames on its standard input. Odd sizes are padded
// to even. ffmpeg writes under a unique temporary name beside path; the file
// is fsynced, renamed into place and its folder synced (atomicfile.Publish),
// so a killed run never leaves a partial sample.mp4.
func WriteMP4(ctx context.Context, path string, frames []*image.RGBA, opt Options) error {
	fr, err := prepare(frames, opt.Scale)
	if err != nil {
		return fmt.Errorf("mp4 %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("mp4 %s: %w", path, err)
	}
	w, h := fr[0].Rect.Dx(), fr[0].Rect.Dy()
	tmp := atomicfile.TempPath(path)
	defer os.Remove(tmp) // ours; gone once published
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "rawvideo", "-pix_fmt", "rgba", "-s", fmt.Sprintf("%dx%d", w, h),
		"-framerate", strconv.FormatFloat(opt.fps(), 'f', -1, 64), "-i", "pipe:0",
		"-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "medium", "-crf", "18",
		"-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", tmp)
	var raw bytes.Buffer
	for _, f := range fr {
		raw.Write(f.Pix)
	}
	cmd.Stdin = &raw
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("mp4 %s: ffmpeg: %w: %s", path, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := atomicfile.Publish(tmp, path); err != nil {
		return fmt.Errorf("mp4 %s: %w", path, err)
	}
	return nil
}

// WriteContactSheet lays the frames out in a grid of cols columns (0 picks a
// near-square grid) with a 2-pixel gap and writes a PNG.
func WriteContactSheet(path string, frames []*image.RGBA, cols, scale int) error {
	fr, err := prepare(frames, scale)
	if err != nil {
		return fmt.Errorf("contact sheet %s: %w", path, err)
	}
	if cols <= 0 {
		cols = int(math.Ceil(math.Sqrt(float64(len(fr)))))
	}
	rows := (len(fr) + cols - 1) / cols
	const gap = 2
	fw, fh := fr[0].Rect.Dx(), fr[0].Rect.Dy()
	sheet := image.NewRGBA(image.Rect(0, 0, cols*(fw+gap)+gap, rows*(fh+gap)+gap))
	draw.Draw(sheet, sheet.Rect, image.NewUniform(color.RGBA{255, 255, 255, 255}), image.Point{}, draw.Src)
	for i, f := range fr {
		x, y := gap+(i%cols)*(fw+gap), gap+(i/cols)*(fh+gap)
		draw.Draw(sheet, image.Rect(x, y, x+fw, y+fh), f, image.Point{}, draw.Src)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, sheet); err != nil {
		return fmt.Errorf("contact sheet %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}
