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
// into dst as float32 (C=3, H=res, W=res), RGB in [-1, 1]. dst must hold
// 3*res*res values. Downscaling is a box filter (the mean of each k x k
// block). A JPEG's *image.YCbCr whose square side is a multiple of res takes
// a fast path that averages in YCbCr and converts once per output pixel;
// other images go through imaging (CropCenter, then Resize with a box
// filter).
func ToTensor(dst []float32, img image.Image, res int) {
	if m, ok := img.(*image.YCbCr); ok && ycbcrBox(dst, m, res) {
		return
	}
	b := img.Bounds()
	var n *image.NRGBA
	if side := min(b.Dx(), b.Dy()); side == res {
		n = imaging.CropCenter(img, side, side)
	} else {
		n = imaging.Resize(imaging.CropCenter(img, side, side), res, res, imaging.Box)
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

// ycbcrBox is ToTensor's fast path: the centre square of m, box-averaged by
// an integer factor in YCbCr, converted to RGB with the JFIF matrix. It
// reports false (writing nothing) when the square side is not a multiple of
// res.
func ycbcrBox(dst []float32, m *image.YCbCr, res int) bool {
	b := m.Bounds()
	side := min(b.Dx(), b.Dy())
	if res < 1 || side < res || side%res != 0 {
		return false
	}
	k := side / res
	x0, y0 := b.Min.X+(b.Dx()-side)/2, b.Min.Y+(b.Dy()-side)/2
	// Chroma subsampling: a luma pixel (x, y) uses chroma (x>>cx, y>>cy).
	var cx, cy int
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
	case image.YCbCrSubsampleRatio422:
		cx = 1
	case image.YCbCrSubsampleRatio420:
		cx, cy = 1, 1
	case image.YCbCrSubsampleRatio440:
		cy = 1
	default:
		return false
	}
	cminX, cminY := b.Min.X>>cx, b.Min.Y>>cy
	plane := res * res
	rp, gp, bp := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	ySum := make([]int, res)
	cbSum := make([]int, res)
	crSum := make([]int, res)
	// Each output pixel's chroma is a whole block of chroma samples when
	// the luma block is aligned to the subsampling; otherwise look chroma
	// up per luma pixel.
	blocky := k%(1<<cx) == 0 && k%(1<<cy) == 0 && x0%(1<<cx) == 0 && y0%(1<<cy) == 0
	kcx, kcy := k>>cx, k>>cy
	if !blocky {
		kcx, kcy = k, k
	}
	yInv := 1 / float32(k*k)
	cInv := 1 / float32(kcx*kcy)
	for oy := 0; oy < res; oy++ {
		clear(ySum)
		clear(cbSum)
		clear(crSum)
		for dy := 0; dy < k; dy++ {
			y := y0 + oy*k + dy
			row := m.Y[(y-b.Min.Y)*m.YStride+x0-b.Min.X:]
			row = row[:res*k]
			for ox := range ySum {
				s := 0
				for _, v := range row[ox*k : ox*k+k] {
					s += int(v)
				}
				ySum[ox] += s
			}
		}
		if blocky {
			for dy := 0; dy < kcy; dy++ {
				cy0 := (y0+oy*k)>>cy + dy - cminY
				off := cy0*m.CStride + x0>>cx - cminX
				cb, cr := m.Cb[off:off+res*kcx], m.Cr[off:off+res*kcx]
				for ox := range cbSum {
					sb, sr := 0, 0
					for i := ox * kcx; i < ox*kcx+kcx; i++ {
						sb += int(cb[i])
						sr += int(cr[i])
					}
					cbSum[ox] += sb
					crSum[ox] += sr
				}
			}
		} else {
			for dy := 0; dy < k; dy++ {
				y := y0 + oy*k + dy
				crow := (y>>cy - cminY) * m.CStride
				cb, cr := m.Cb[crow:], m.Cr[crow:]
				for ox := range cbSum {
					sb, sr := 0, 0
					for x := x0 + ox*k; x < x0+ox*k+k; x++ {
						ci := x>>cx - cminX
						sb += int(cb[ci])
						sr += int(cr[ci])
					}
					cbSum[ox] += sb
					crSum[ox] += sr
				}
			}
		}
		o := oy * res
		for ox := 0; ox < res; ox++ {
			yv := float32(ySum[ox]) * yInv
			cbv := float32(cbSum[ox])*cInv - 128
			crv := float32(crSum[ox])*cInv - 128
			rp[o+ox] = unit(yv + 1.402*crv)
			gp[o+ox] = unit(yv - 0.344136*cbv - 0.714136*crv)
			bp[o+ox] = unit(yv + 1.772*cbv)
		}
	}
	return true
}

// unit maps a 0..255 channel value (clamped) to [-1, 1].
func unit(v float32) float32 {
	v = min(max(v, 0), 255)
	return v/127.5 - 1
}
