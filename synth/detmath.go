package synth

import "math"

// Deterministic replacements for the math functions the renderer needs.
// The math package's Exp, Pow, Sin, Cos and Tan are assembly on some
// architectures and Go (which the compiler may fuse) on others, so they can
// differ in the last bit between machines. These use only +, -, *, /, Sqrt
// (correctly rounded everywhere) and Ldexp (exact), with products rounded
// explicitly, so every machine gets the same bits.

// expDet returns e**x for x in [-700, 700], to about 1e-15 relative.
func expDet(x float64) float64 {
	const (
		ln2   = 0.6931471805599453
		ln2Hi = 6.93147180369123816490e-01 // ln2 split so k*ln2Hi is exact
		ln2Lo = 1.90821492927058770002e-10
	)
	k := math.Floor(x/ln2 + 0.5)
	r := (x - float64(k*ln2Hi)) - float64(k*ln2Lo) // |r| <= ln2/2
	// Taylor series of e**r, Horner form, 13 terms: error < 1e-16.
	s := 1.0
	for n := 13; n >= 1; n-- {
		s = 1 + float64(r*s)/float64(n)
	}
	return math.Ldexp(s, int(k))
}

// unitDet returns the unit vector at angle a (radians) by rotating (1, 0)
// with a Taylor-series sine and cosine of a reduced angle.
func unitDet(a float64) (c, s float64) {
	const twoPi = 2 * math.Pi
	a -= float64(math.Floor(a/twoPi) * twoPi) // [0, 2pi)
	// Halve until small, then double with the double-angle formulas.
	halvings := 0
	for a > 0.1 {
		a /= 2
		halvings++
	}
	a2 := float64(a * a)
	s = a * (1 - float64(a2/6*(1-float64(a2/20*(1-float64(a2/42))))))
	c = 1 - float64(a2/2*(1-float64(a2/12*(1-float64(a2/30)))))
	for ; halvings > 0; halvings-- {
		s, c = float64(2*float64(s*c)), float64(c*c)-float64(s*s)
	}
	n := math.Sqrt(float64(c*c) + float64(s*s))
	return c / n, s / n
}
