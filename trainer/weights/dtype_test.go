package weights

import (
	"math"
	"testing"
)

// Every half value widens to the float32 of the same value (checked against
// the definition: sign, 2^(e-15) * (1 + m/1024), subnormals m * 2^-24).
func TestHalfToFloatAllValues(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		e, m := int(h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch {
		case e == 0x1f && m == 0:
			want = math.Inf(1)
		case e == 0x1f:
			want = math.NaN()
		case e == 0:
			want = m * math.Pow(2, -24)
		default:
			want = math.Pow(2, float64(e-15)) * (1 + m/1024)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		got := float64(f16Table[h])
		if math.IsNaN(want) != math.IsNaN(got) || (!math.IsNaN(want) && (got != want || math.Signbit(got) != math.Signbit(want))) {
			t.Fatalf("half %#04x: %v, want %v", h, got, want)
		}
	}
}
