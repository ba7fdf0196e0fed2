package shards

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"

	"github.com/disintegration/imaging"
)

// frame returns video id's frame (1-based) and the video.
func (d *Dataset) frame(id string, frame int) (*video, frameRef, error) {
	v, ok := d.videos[id]
	if !ok {
		return nil, frameRef{}, fmt.Errorf("shards: no video %s", id)
	}
	if frame < 1 || frame > len(v.frames) {
		return nil, frameRef{}, fmt.Errorf("shards: video %s has no frame %d (it has %d)", id, frame, len(v.frames))
	}
	return v, v.frames[frame-1], nil
}

// FrameJPEG returns the JPEG bytes of frame (1-based) of video id. The slice
// points into the mapped shard: read-only, valid until Close.
func (d *Dataset) FrameJPEG(id string, frame int) ([]byte, error) {
	_, f, err := d.frame(id, frame)
	if err != nil {
		return nil, err
	}
	return f.jpeg, nil
}

// FramePTS returns the time of frame (1-based) of video id in its source video.
func (d *Dataset) FramePTS(id string, frame int) (float64, error) {
	_, f, err := d.frame(id, frame)
	return f.pts, err
}

// Frame decodes frame (1-based) of video id. A corrupt JPEG gives an error
// naming the video, the frame and the shard.
func (d *Dataset) Frame(id string, frame int) (image.Image, error) {
	v, f, err := d.frame(id, frame)
	if err != nil {
		return nil, err
	}
	return decodeFrame(v, frame, f)
}

// maxFrameSide bounds the width and height of a frame we decode, so that a
// corrupt header cannot make us allocate gigabytes.
const maxFrameSide = 8192

// decodeFrame decodes a frame's JPEG after checking that its header agrees
// with the row's width and height.
func decodeFrame(v *video, frame int, f frameRef) (image.Image, error) {
	c, err := jpeg.DecodeConfig(bytes.NewReader(f.jpeg))
	if err != nil {
		return nil, frameError(v, frame, err)
	}
	if c.Width != int(f.width) || c.Height != int(f.height) || c.Width > maxFrameSide || c.Height > maxFrameSide {
		return nil, frameError(v, frame, fmt.Errorf("header says %dx%d, row says %dx%d", c.Width, c.Height, f.width, f.height))
	}
	img, err := jpeg.Decode(bytes.NewReader(f.jpeg))
	if err != nil {
		return nil, frameError(v, frame, err)
	}
	return img, nil
}

func frameError(v *video, frame int, err error) error {
	return fmt.Errorf("shards: video %s frame %d (%s): decode jpeg: %w", v.ID, frame, v.shard, err)
}

// ToTensor writes img, centre-cropped to a square and resized to res x res,
// into dst as float32 (C=3, H=res, W=res) in [-1, 1]. dst must hold 3*res*res
// values.
func ToTensor(dst []float32, img image.Image, res int) {
	b := img.Bounds()
	var n *image.NRGBA
	if b.Dx() == res && b.Dy() == res {
		n = imaging.Clone(img)
	} else {
		n = imaging.Fill(img, res, res, imaging.Center, imaging.Box)
	}
	plane := res * res
	r, g, bl := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	for y := 0; y < res; y++ {
		row := n.Pix[y*n.Stride : y*n.Stride+4*res]
		o := y * res
		for x := 0; x < res; x++ {
			p := row[4*x : 4*x+3]
			r[o+x] = float32(p[0])/127.5 - 1
			g[o+x] = float32(p[1])/127.5 - 1
			bl[o+x] = float32(p[2])/127.5 - 1
		}
	}
}
