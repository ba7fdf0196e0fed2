package frames

import (
	"strings"
	"testing"
)

// The two command lines carry the recipe's settings: output -ss/-t/-r with
// constant frame rate in the decoder, the scale+crop filter and -q:v in the
// encoder, and the colour range handed across the raw pipe.
func TestArgs(t *testing.T) {
	src := Source{ID: "x", Path: "/v/in.mp4", Duration: 10.033333, ColorRange: "pc"}
	dec, enc := Args(src, DefaultParams(), "/out/x")
	d, e := strings.Join(dec, " "), strings.Join(enc, " ")
	for _, want := range []string{"-threads 1 -i /v/in.mp4", "-f nut", "-c:v rawvideo", "-fps_mode cfr", "-r 5", "-ss 2", "-t 6.033333", "-an", "pipe:1", "-nostdin", "-v error"} {
		if !strings.Contains(d, want) {
			t.Errorf("decode command lacks %q: %s", want, d)
		}
	}
	for _, want := range []string{"-f nut -color_range pc -i pipe:0", "-vf " + ScaleCrop(512), "-q:v 0", "-fps_mode passthrough", "-start_number 0", "/out/x/%06d.jpg"} {
		if !strings.Contains(e, want) {
			t.Errorf("encode command lacks %q: %s", want, e)
		}
	}
	if got := ScaleCrop(512); got != "scale='if(gt(iw,ih),-1,512)':'if(gt(iw,ih),512,-1)',crop=512:512:exact=1" {
		t.Errorf("ScaleCrop(512) = %s, not the recipe's filter", got)
	}
	p := DefaultParams()
	p.DropFirst = false
	if _, enc := Args(src, p, "/o"); !strings.Contains(strings.Join(enc, " "), "-start_number 1") {
		t.Errorf("without drop_first frames should start at 1: %v", enc)
	}
}

func TestParamsValidate(t *testing.T) {
	bad := []func(*Params){
		func(p *Params) { p.FPS = 0 },
		func(p *Params) { p.Size = 511 },
		func(p *Params) { p.TrimHead = -1 },
		func(p *Params) { p.JPEGQuality = 40 },
	}
	for i, f := range bad {
		p := DefaultParams()
		f(&p)
		if p.Validate() == nil {
			t.Errorf("case %d: %+v accepted", i, p)
		}
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Error(err)
	}
}
