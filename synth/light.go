package synth

// rgb is a colour with components nominally in [0, 1]. Products are
// rounded explicitly (see the note in noise.go).
type rgb struct{ r, g, b float64 }

func (c rgb) mix(d rgb, t float64) rgb {
	return rgb{lerp(c.r, d.r, t), lerp(c.g, d.g, t), lerp(c.b, d.b, t)}
}

func (c rgb) scale(k float64) rgb { return rgb{float64(c.r * k), float64(c.g * k), float64(c.b * k)} }

func (c rgb) add(d rgb) rgb { return rgb{c.r + d.r, c.g + d.g, c.b + d.b} }

func (c rgb) mul(d rgb) rgb { return rgb{float64(c.r * d.r), float64(c.g * d.g), float64(c.b * d.b)} }

func hexRGB(v uint32) rgb {
	return rgb{float64(v>>16&255) / 255, float64(v>>8&255) / 255, float64(v&255) / 255}
}

// lighting is the sky's and the sun's colours for one sun elevation.
type lighting struct {
	zenith, horizon rgb // sky gradient ends
	sun             rgb // direct light and the sun's glow
	strength        float64
}

// lightKeys are lightings at sun elevations (degrees), interpolated between:
// from deep dusk through golden hour to midday.
var lightKeys = []struct {
	elev float64
	l    lighting
}{
	{-10, lighting{hexRGB(0x0b1030), hexRGB(0x2a2350), hexRGB(0x403060), 0.05}},
	{-3, lighting{hexRGB(0x1e2b5e), hexRGB(0xc0604a), hexRGB(0xff6a3a), 0.35}},
	{2, lighting{hexRGB(0x3a5a9a), hexRGB(0xf29a5c), hexRGB(0xff9a50), 0.65}},
	{8, lighting{hexRGB(0x4a78c0), hexRGB(0xf0c090), hexRGB(0xffd0a0), 0.85}},
	{20, lighting{hexRGB(0x3d7ad0), hexRGB(0xb8d0e8), hexRGB(0xfff0dc), 1}},
	{45, lighting{hexRGB(0x2a66c8), hexRGB(0xa8c8ec), hexRGB(0xfffaf0), 1}},
}

// lightAt interpolates the lighting for a sun elevation in degrees.
func lightAt(elev float64) lighting {
	k := lightKeys
	if elev <= k[0].elev {
		return k[0].l
	}
	for i := 1; i < len(k); i++ {
		if elev <= k[i].elev {
			t := (elev - k[i-1].elev) / (k[i].elev - k[i-1].elev)
			a, b := k[i-1].l, k[i].l
			return lighting{
				zenith:   a.zenith.mix(b.zenith, t),
				horizon:  a.horizon.mix(b.horizon, t),
				sun:      a.sun.mix(b.sun, t),
				strength: lerp(a.strength, b.strength, t),
			}
		}
	}
	return k[len(k)-1].l
}
