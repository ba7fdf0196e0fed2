package model

import (
	"math"
	"testing"
)

// FloatToHalf rounds to nearest, ties to even, over every half value and
// the midpoints between neighbours.
func TestFloatToHalf(t *testing.T) {
	half := func(h uint16) float64 {
		e, m := int(h>>10&0x1f), float64(h&0x3ff)
		var v float64
		switch e {
		case 0:
			v = m / 1024 * math.Pow(2, -14)
		case 0x1f:
			v = math.Inf(1)
		default:
			v = (1 + m/1024) * math.Pow(2, float64(e-15))
		}
		if h&0x8000 != 0 {
			v = -v
		}
		return v
	}
	for h := 0; h < 0x7c00; h++ {
		v := half(uint16(h))
		if got := FloatToHalf(float32(v)); got != uint16(h) {
			t.Fatalf("half %#04x (%g) -> %#04x", h, v, got)
		}
		if got := FloatToHalf(float32(-v)); got != uint16(h)|0x8000 {
			t.Fatalf("half -%#04x -> %#04x", h, got)
		}
		if h+1 < 0x7c00 {
			mid := (v + half(uint16(h+1))) / 2
			want := uint16(h)
			if h&1 == 1 {
				want = uint16(h + 1)
			}
			if got := FloatToHalf(float32(mid)); got != want {
				t.Fatalf("midpoint of %#04x and %#04x -> %#04x, want %#04x", h, h+1, got, want)
			}
		}
	}
	if FloatToHalf(70000) != 0x7c00 || FloatToHalf(float32(math.Inf(-1))) != 0xfc00 || FloatToHalf(float32(math.NaN()))&0x7c00 != 0x7c00 {
		t.Error("overflow, infinity or NaN not kept")
	}
}
