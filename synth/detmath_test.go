package synth

import (
	"math"
	"testing"
)

func TestDetMathMatchesMath(t *testing.T) {
	for x := -60.0; x <= 5; x += 0.37 {
		if got, want := expDet(x), math.Exp(x); math.Abs(got-want) > 4e-15*want {
			t.Errorf("expDet(%g) = %g, want %g", x, got, want)
		}
	}
	for a := -7.0; a <= 14; a += 0.113 {
		c, s := unitDet(a)
		if math.Abs(c-math.Cos(a)) > 1e-11 || math.Abs(s-math.Sin(a)) > 1e-11 {
			t.Errorf("unitDet(%g) = (%g, %g), want (%g, %g)", a, c, s, math.Cos(a), math.Sin(a))
		}
	}
}
