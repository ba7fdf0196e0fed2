package synth

import "math"

// Floating-point note: products are wrapped in explicit float64(...)
// conversions wherever an addition follows. Go may fuse x*y+z into one
// instruction on some architectures (arm64, ppc64, s390x) but never across an
// explicit conversion, so every machine computes the same values and the
// rendered bytes do not depend on the CPU.

// texSize is the side of the periodic cloud textures (a power of two).
const (
	texSize = 256
	texMask = texSize - 1
)

// texture is a periodic texSize x texSize field, stored as float32 to halve
// its cache footprint; sampling computes in float64.
type texture []float32

// fbmTexture returns a periodic fractal value-noise field in [0, 1]: octaves
// of smoothly interpolated lattice noise, each twice the frequency and gain
// times the amplitude of the last. Periodicity lets clouds drift forever.
func fbmTexture(r *rng, baseCells, octaves int, gain float64) texture {
	acc := make([]float64, texSize*texSize)
	amp := 1.0
	cells := baseCells
	for o := 0; o < octaves && cells <= texSize; o++ {
		lat := make([]float64, cells*cells)
		for i := range lat {
			lat[i] = r.float()
		}
		scale := float64(cells) / texSize
		for y := 0; y < texSize; y++ {
			fy := float64(float64(y) * scale)
			y0 := int(fy)
			ty := smooth(fy - float64(y0))
			y1 := (y0 + 1) % cells
			for x := 0; x < texSize; x++ {
				fx := float64(float64(x) * scale)
				x0 := int(fx)
				tx := smooth(fx - float64(x0))
				x1 := (x0 + 1) % cells
				a := lerp(lat[y0*cells+x0], lat[y0*cells+x1], tx)
				b := lerp(lat[y1*cells+x0], lat[y1*cells+x1], tx)
				acc[y*texSize+x] += float64(amp * lerp(a, b, ty))
			}
		}
		amp *= gain
		cells *= 2
	}
	// Stretch to [0, 1] so coverage thresholds mean the same for every seed.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range acc {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	t := make(texture, len(acc))
	for i, v := range acc {
		t[i] = float32((v - lo) / (hi - lo))
	}
	return t
}

// at samples the texture at (u, v) in texels, bilinearly, wrapping around.
func (t texture) at(u, v float64) float64 {
	fu, fv := math.Floor(u), math.Floor(v)
	x0, y0 := int(fu)&texMask, int(fv)&texMask
	x1, y1 := (x0+1)&texMask, (y0+1)&texMask
	du, dv := u-fu, v-fv
	r0 := lerp(float64(t[y0*texSize+x0]), float64(t[y0*texSize+x1]), du)
	r1 := lerp(float64(t[y1*texSize+x0]), float64(t[y1*texSize+x1]), du)
	return lerp(r0, r1, dv)
}

// lerp is a + (b-a)*t, never fused.
func lerp(a, b, t float64) float64 { return a + float64((b-a)*t) }

// ridge returns n samples of a 1-D fractal noise profile stretched to
// [0, 1], for a landscape silhouette: cells lattice points across the width,
// octaves doubling in frequency.
func ridge(r *rng, n, cells, octaves int, gain float64) []float64 {
	out := make([]float64, n)
	amp := 1.0
	for o := 0; o < octaves; o++ {
		lat := make([]float64, cells+2)
		for i := range lat {
			lat[i] = r.float()
		}
		for x := 0; x < n; x++ {
			f := float64(float64(x) / float64(n) * float64(cells))
			i := int(f)
			t := smooth(f - float64(i))
			out[x] += float64(amp * lerp(lat[i], lat[i+1], t))
		}
		amp *= gain
		cells *= 2
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range out {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	for x := range out {
		out[x] = (out[x] - lo) / (hi - lo + 1e-12)
	}
	return out
}

// smooth is the quintic fade 6t^5 - 15t^4 + 10t^3.
func smooth(t float64) float64 {
	return t * t * t * (float64(t*(float64(t*6)-15)) + 10)
}

// smoothstep is 0 below e0, 1 above e1 and a cubic ramp between.
func smoothstep(e0, e1, x float64) float64 {
	t := (x - e0) / (e1 - e0)
	if t <= 0 {
		return 0
	}
	if t >= 1 {
		return 1
	}
	return t * t * (3 - float64(2*t))
}

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }
