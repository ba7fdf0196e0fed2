package synth

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Spec)
		want string // "" = valid
	}{
		{"defaults", func(*Spec) {}, ""},
		{"odd width", func(s *Spec) { s.Width = 95 }, "even"},
		{"tiny", func(s *Spec) { s.Height = 8 }, "out of range"},
		{"zero fps is default", func(s *Spec) { s.FPS = 0 }, ""},
		{"negative fps", func(s *Spec) { s.FPS = -1 }, "fps"},
		{"NaN seconds", func(s *Spec) { s.Seconds = math.NaN() }, "seconds"},
		{"frozen too long", func(s *Spec) { s.FrozenHead, s.FrozenTail = 4, 3 }, "exceed"},
		{"negative frozen", func(s *Spec) { s.FrozenTail = -1 }, "negative"},
		{"codec", func(s *Spec) { s.Codec = "av1" }, "codec"},
		{"pix_fmt", func(s *Spec) { s.PixFmt = "rgb24" }, "pixel format"},
		{"rotate 45", func(s *Spec) { s.Rotate = 45 }, "rotate"},
		{"rotate webm", func(s *Spec) { s.Rotate, s.Codec = 90, VP9 }, "WebM"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := tiny
			c.mod(&s)
			err := s.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Validate = %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

// Videos of a set get distinct seeds, and adding videos does not change the
// earlier ones.
func TestSetSeedsAndNames(t *testing.T) {
	a := Set{Count: 3, Spec: Spec{Seed: 5}}
	b := Set{Count: 9, Spec: Spec{Seed: 5}}
	seen := map[int64]bool{}
	for i := range b.Count {
		s := b.VideoSpec(i).Seed
		if seen[s] {
			t.Fatalf("video %d repeats seed %d", i, s)
		}
		seen[s] = true
		if i < a.Count && a.VideoSpec(i) != b.VideoSpec(i) {
			t.Errorf("video %d changed when count grew", i)
		}
	}
	if got := (Set{Spec: Spec{Codec: VP9}}).VideoName(12); got != "synth-0012.webm" {
		t.Errorf("VideoName = %q", got)
	}
}

// The wind differs by seed in speed and direction (all four quadrants occur).
func TestWindVariesBySeed(t *testing.T) {
	quadrants := map[[2]bool]bool{}
	speeds := map[int]bool{}
	for seed := int64(0); seed < 32; seed++ {
		sc := newScene(Spec{Width: 32, Height: 32, Seed: seed}.WithDefaults())
		quadrants[[2]bool{sc.windU > 0, sc.windV > 0}] = true
		speeds[int(math.Hypot(sc.windU, sc.windV))] = true
		if math.Hypot(sc.windU, sc.windV) < 5 {
			t.Errorf("seed %d: wind too slow to see", seed)
		}
	}
	if len(quadrants) != 4 || len(speeds) < 5 {
		t.Errorf("32 seeds gave wind in %d quadrants and %d distinct speeds", len(quadrants), len(speeds))
	}
}

// The plan keeps every frame of the frozen spans under VFR and maps frame
// numbers to encoder numbers for the x264 zones.
func TestPlanVFR(t *testing.T) {
	sp := Spec{FPS: 10, Seconds: 6, FrozenHead: 1, FrozenTail: 1, VFR: true, Seed: 3}.WithDefaults()
	pl := newPlan(sp)
	if pl.headLast != 10 || pl.tailFirst != 50 {
		t.Fatalf("head ends at %d, tail starts at %d; want 10 and 50", pl.headLast, pl.tailFirst)
	}
	for i := 0; i < pl.n; i++ {
		if (i <= 10 || i >= 50) && !slices.Contains(pl.kept, i) {
			t.Errorf("frozen frame %d dropped", i)
		}
	}
	dropped := pl.n - len(pl.kept)
	if want := 39 * 2 / 7; dropped < want-2 || dropped > want+2 {
		t.Errorf("dropped %d of 39 motion frames, want about %d", dropped, want)
	}
	wantZones := "1,10,q=51/" + strconv.Itoa(pl.encIndex(50)+1) + "," + strconv.Itoa(len(pl.kept)-1) + ",q=51"
	if z := pl.zones(); z != wantZones {
		t.Errorf("zones %q, want %q", z, wantZones)
	}
	if keys := pl.keyFrames(); keys[0] != 0 || keys[1] != 11 || keys[len(keys)-1] != 50 {
		t.Errorf("keyframes %v: want 0, 11 (after the head), ..., 50 (tail)", keys)
	}
}

// Rotation, 10-bit and VFR are real: ffprobe sees a display matrix, a 10-bit
// profile, irregular timestamps over the full duration.
func TestVariantsAsProbed(t *testing.T) {
	t.Run("rotate", func(t *testing.T) {
		t.Parallel()
		for _, deg := range []int{90, 270} {
			sp := tiny
			sp.Rotate = deg
			v, _ := mustProbe(t, render(t, sp, "r.mp4")).video()
			if len(v.SideDataList) == 0 || v.SideDataList[0].SideDataType != "Display Matrix" {
				t.Fatalf("rotate %d: side data %+v, want a display matrix", deg, v.SideDataList)
			}
			if got := ((v.SideDataList[0].Rotation % 360) + 360) % 360; got != deg {
				t.Errorf("rotate %d: ffprobe rotation %d", deg, v.SideDataList[0].Rotation)
			}
			if v.Width != sp.Width || v.Height != sp.Height {
				t.Errorf("stored frames %dx%d, want unrotated %dx%d", v.Width, v.Height, sp.Width, sp.Height)
			}
		}
	})
	t.Run("10bit", func(t *testing.T) {
		t.Parallel()
		for _, codec := range []string{H264, VP9} {
			sp := tiny
			sp.Codec, sp.PixFmt = codec, "yuv420p10le"
			v, _ := mustProbe(t, render(t, sp, "p"+sp.Ext())).video()
			if v.PixFmt != "yuv420p10le" {
				t.Errorf("%s: pix_fmt %q", codec, v.PixFmt)
			}
		}
	})
	t.Run("vfr", func(t *testing.T) {
		t.Parallel()
		for _, codec := range []string{H264, VP9} {
			sp := tiny
			sp.Codec, sp.VFR = codec, true
			path := render(t, sp, "v"+sp.Ext())
			ts := frameTimes(t, path)
			if len(ts) >= sp.Frames() || len(ts) < sp.Frames()/2 {
				t.Errorf("%s: %d frames, want fewer than %d", codec, len(ts), sp.Frames())
			}
			gaps := map[int]bool{}
			for i := 1; i < len(ts); i++ {
				gaps[int(math.Round((ts[i]-ts[i-1])*sp.FPS))] = true
			}
			if !gaps[1] || len(gaps) < 2 {
				t.Errorf("%s: frame gaps %v (in frame intervals), want 1 and longer ones", codec, gaps)
			}
			if d := mustProbe(t, path).duration(t); math.Abs(d-sp.Seconds) > 0.01 {
				t.Errorf("%s: duration %g, want %g", codec, d, sp.Seconds)
			}
		}
	})
	t.Run("portrait", func(t *testing.T) {
		t.Parallel()
		sp := tiny
		sp.Width, sp.Height = 64, 96
		v, _ := mustProbe(t, render(t, sp, "p.mp4")).video()
		if v.Width != 64 || v.Height != 96 {
			t.Errorf("size %dx%d, want 64x96", v.Width, v.Height)
		}
	})
}

// RenderSet writes Count videos and, with Faults, the fault files.
func TestRenderSet(t *testing.T) {
	dir := t.TempDir()
	sp := tiny
	sp.Seconds = 3
	sp.FrozenHead, sp.FrozenTail = 0.5, 0.5
	paths, err := RenderSet(context.Background(), Set{Count: 2, Spec: sp, Faults: true}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + len(Faults(sp)); len(paths) != want {
		t.Fatalf("%d paths, want %d", len(paths), want)
	}
	if !strings.HasSuffix(paths[0], "synth-0000.mp4") || !strings.HasSuffix(paths[1], "synth-0001.mp4") {
		t.Errorf("paths start %v", paths[:2])
	}
}
