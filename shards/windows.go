package shards

import "fmt"

// Window is a clip: frames Start, Start+Stride, ... of one video (Start is
// 1-based). Windows never cross videos.
type Window struct {
	Video string
	Start int
}

// span returns how many consecutive frames a window of length t with stride
// s covers.
func span(t, s int) int { return (t-1)*s + 1 }

// Windows lists every window of length framesLength and frame step stride
// (0 means 1) in a split ("" for all videos), ordered by video ID then start.
func (d *Dataset) Windows(split string, framesLength, stride int) ([]Window, error) {
	vs := d.Videos(split)
	return windowsOf(len(vs), func(i int) (string, int) { return vs[i].ID, vs[i].Frames }, framesLength, stride)
}

// windowsOf lists the windows of n videos (video(i) gives the i-th's ID
// and frame count, in ID order).
func windowsOf(n int, video func(i int) (string, int), framesLength, stride int) ([]Window, error) {
	if framesLength < 1 {
		return nil, fmt.Errorf("shards: frames length %d, want at least 1", framesLength)
	}
	if stride == 0 {
		stride = 1
	}
	if stride < 1 {
		return nil, fmt.Errorf("shards: stride %d, want at least 1", stride)
	}
	sp := span(framesLength, stride)
	var out []Window
	for i := 0; i < n; i++ {
		id, frames := video(i)
		for s := 1; s+sp-1 <= frames; s++ {
			out = append(out, Window{Video: id, Start: s})
		}
	}
	return out, nil
}

// NumWindows returns len(Windows(split, framesLength, stride)) without
// building the list (0 on bad arguments).
func (d *Dataset) NumWindows(split string, framesLength, stride int) int {
	if stride == 0 {
		stride = 1
	}
	if framesLength < 1 || stride < 1 {
		return 0
	}
	sp := span(framesLength, stride)
	n := 0
	for _, v := range d.videos {
		if (split == "" || v.Split == split) && v.Frames >= sp {
			n += v.Frames - sp + 1
		}
	}
	return n
}
