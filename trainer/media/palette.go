package media

import (
	"image"
	"image/color"
	"sort"
)

// medianCut builds a palette of at most n colours from the frames' pixels
// (sampled to at most ~256k), splitting the box with the widest channel range
// at its median until n boxes exist; each colour is its box's mean.
func medianCut(frames []*image.RGBA, n int) color.Palette {
	total := 0
	for _, f := range frames {
		total += len(f.Pix) / 4
	}
	stride := max(1, total/(256<<10))
	var px [][3]uint8
	k := 0
	for _, f := range frames {
		for i := 0; i < len(f.Pix); i += 4 {
			if k%stride == 0 {
				px = append(px, [3]uint8{f.Pix[i], f.Pix[i+1], f.Pix[i+2]})
			}
			k++
		}
	}
	if len(px) == 0 {
		return color.Palette{color.RGBA{0, 0, 0, 255}}
	}
	boxes := [][][3]uint8{px}
	for len(boxes) < n {
		best, bestCh, bestRange := -1, 0, 0
		for i, b := range boxes {
			if len(b) < 2 {
				continue
			}
			ch, r := widest(b)
			if r > bestRange {
				best, bestCh, bestRange = i, ch, r
			}
		}
		if best < 0 {
			break
		}
		b := boxes[best]
		sort.Slice(b, func(i, j int) bool { return b[i][bestCh] < b[j][bestCh] })
		mid := splitPoint(b, bestCh)
		boxes[best] = b[:mid]
		boxes = append(boxes, b[mid:])
	}
	pal := make(color.Palette, 0, len(boxes))
	for _, b := range boxes {
		var s [3]int
		for _, p := range b {
			s[0] += int(p[0])
			s[1] += int(p[1])
			s[2] += int(p[2])
		}
		m := len(b)
		pal = append(pal, color.RGBA{uint8((s[0] + m/2) / m), uint8((s[1] + m/2) / m), uint8((s[2] + m/2) / m), 255})
	}
	return pal
}

// splitPoint returns the index nearest the median where the sorted channel
// value changes, so one colour never lands in two boxes.
func splitPoint(b [][3]uint8, ch int) int {
	mid := len(b) / 2
	v := b[mid][ch]
	lo := mid
	for lo > 0 && b[lo-1][ch] == v {
		lo--
	}
	hi := mid
	for hi < len(b) && b[hi][ch] == v {
		hi++
	}
	switch {
	case lo == 0:
		return hi
	case hi == len(b):
		return lo
	case mid-lo <= hi-mid:
		return lo
	}
	return hi
}

func widest(b [][3]uint8) (ch, rng int) {
	lo := [3]uint8{255, 255, 255}
	var hi [3]uint8
	for _, p := range b {
		for c := range 3 {
			lo[c] = min(lo[c], p[c])
			hi[c] = max(hi[c], p[c])
		}
	}
	for c := range 3 {
		if r := int(hi[c]) - int(lo[c]); r > rng {
			ch, rng = c, r
		}
	}
	return ch, rng
}

// quantizer maps colours to palette indices, memoised on 6 bits per channel.
type quantizer struct {
	pal   color.Palette
	cache []int16
}

func newQuantizer(pal color.Palette) *quantizer {
	q := &quantizer{pal: pal, cache: make([]int16, 1<<18)}
	for i := range q.cache {
		q.cache[i] = -1
	}
	return q
}

func (q *quantizer) index(r, g, b uint8) uint8 {
	key := int(r>>2)<<12 | int(g>>2)<<6 | int(b>>2)
	if v := q.cache[key]; v >= 0 {
		return uint8(v)
	}
	best, bestD := 0, 1<<30
	for i, c := range q.pal {
		pc := c.(color.RGBA)
		dr, dg, db := int(pc.R)-int(r), int(pc.G)-int(g), int(pc.B)-int(b)
		if d := dr*dr + dg*dg + db*db; d < bestD {
			best, bestD = i, d
		}
	}
	q.cache[key] = int16(best)
	return uint8(best)
}

func (q *quantizer) paletted(img *image.RGBA) *image.Paletted {
	b := img.Bounds()
	out := image.NewPaletted(image.Rect(0, 0, b.Dx(), b.Dy()), q.pal)
	for y := range b.Dy() {
		for x := range b.Dx() {
			i := img.PixOffset(b.Min.X+x, b.Min.Y+y)
			out.Pix[y*out.Stride+x] = q.index(img.Pix[i], img.Pix[i+1], img.Pix[i+2])
		}
	}
	return out
}
