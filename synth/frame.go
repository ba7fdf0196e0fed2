package synth

import (
	"math"
	"runtime"
	"sync"
)

// frameParams is what changes from frame to frame: the motion clock and the
// light derived from it.
type frameParams struct {
	t        float64 // seconds of motion (frozen spans hold it)
	progress float64 // 0..1 through the motion span (drives the light)
}

// renderFrame draws the scene at fp into dst (w*h*3 bytes, rgb24), rows split
// across workers goroutines.
func (sc *scene) renderFrame(dst []byte, fp frameParams, workers int) {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	fr := sc.frameState(fp)
	if workers == 1 || sc.h < 2*workers {
		sc.renderRows(dst, fr, 0, sc.h)
		return
	}
	var wg sync.WaitGroup
	step := (sc.h + workers - 1) / workers
	for y0 := 0; y0 < sc.h; y0 += step {
		y1 := min(y0+step, sc.h)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc.renderRows(dst, fr, y0, y1)
		}()
	}
	wg.Wait()
}

// frameState is per-frame constants shared by all rows.
type frameState struct {
	zenith, horizon rgb
	sunCol          rgb
	strength        float64
	sunX, sunY      float64 // sun centre in pixels
	sunR            float64 // disc radius in pixels
	glowR2          float64 // inverse glow radius squared
	offU, offV      float64 // big field offset
	off2U, off2V    float64 // small field offset
	cloudLit        rgb     // sunlit cloud top
	cloudDark       rgb     // cloud base
	land            []rgb   // lit land layer colours
	// glowX[x] is the horizontal factor of the sun's Gaussian glow; the
	// glow is separable, so a pixel costs one multiply instead of an exp.
	glowX []float64
}

func (sc *scene) frameState(fp frameParams) *frameState {
	elev := lerp(sc.elev0, sc.elev1, fp.progress)
	l := lightAt(elev)
	fr := &frameState{zenith: l.zenith, horizon: l.horizon, sunCol: l.sun, strength: l.strength}
	fr.sunX = lerp(sc.sunX0, sc.sunX1, fp.progress) * float64(sc.w)
	// Height above the horizon in view-plane units: elevation in radians
	// (a small-angle tangent, which needs no math.Tan).
	fr.sunY = sc.horizon - float64(elev*math.Pi/180*sc.focal)
	fr.sunR = 0.018 * float64(max(sc.w, sc.h))
	gr := 0.22 * float64(max(sc.w, sc.h))
	fr.glowR2 = 1 / (gr * gr)
	fr.glowX = make([]float64, sc.w)
	for x := range fr.glowX {
		dx := float64(x) + 0.5 - fr.sunX
		fr.glowX[x] = expDet(-dx * dx * fr.glowR2)
	}
	fr.offU = math.Mod(sc.windU*fp.t, texSize*64)
	fr.offV = math.Mod(sc.windV*fp.t, texSize*64)
	fr.off2U = math.Mod(sc.wind2U*fp.t, texSize*64)
	fr.off2V = math.Mod(sc.wind2V*fp.t, texSize*64)
	ambient := l.zenith.mix(l.horizon, 0.5)
	fr.cloudLit = l.sun.scale(lerp(0.55, 1, l.strength)).mix(rgb{1, 1, 1}, 0.25*l.strength)
	fr.cloudDark = ambient.scale(lerp(0.55, 0.75, l.strength))
	for i, a := range sc.albedo {
		lit := a.mul(l.sun.scale(lerp(0.25, 1.15, l.strength)).add(ambient.scale(0.35)))
		fr.land = append(fr.land, lit.mix(l.horizon.scale(0.85), sc.haze[i]))
	}
	return fr
}

func (sc *scene) renderRows(dst []byte, fr *frameState, y0, y1 int) {
	w := sc.w
	for y := y0; y < y1; y++ {
		// Sky gradient: horizon colour low, zenith high.
		v := clamp01((sc.horizon - float64(y)) / sc.horizon)
		sky := fr.horizon.mix(fr.zenith, math.Sqrt(v))
		dy := float64(y) + 0.5 - fr.sunY
		glowY := expDet(-dy*dy*fr.glowR2) * 0.55 * fr.strength
		row := dst[y*w*3 : (y+1)*w*3]
		for x := 0; x < w; x++ {
			i := y*w + x
			var c rgb
			if l := sc.layer[i]; l > 0 {
				c = fr.land[l-1].scale(float64(sc.shade[i]))
			} else {
				dx := float64(x) + 0.5 - fr.sunX
				d2 := float64(dx*dx) + float64(dy*dy)
				glow := fr.glowX[x] * glowY
				c = sky.mix(fr.sunCol, glow)
				if d2 < fr.sunR*fr.sunR {
					c = fr.sunCol.mix(rgb{1, 1, 1}, 0.6)
				}
				// Clouds: two drifting fields; their relative motion
				// makes shapes grow and dissolve as they travel.
				u, vv := float64(sc.pu[i]), float64(sc.pv[i])
				n := float64(0.68*sc.big.at(u-fr.offU, vv-fr.offV)) +
					float64(0.32*sc.small.at(float64(2*u)-fr.off2U, float64(2*vv)-fr.off2V))
				dens := smoothstep(sc.coverage, sc.coverage+sc.softness, n)
				if dens > 0 {
					f := float64(sc.fade[i])
					thick := smoothstep(sc.coverage, sc.coverage+float64(3*sc.softness), n)
					cc := fr.cloudLit.mix(fr.cloudDark, thick)
					cc = cc.add(fr.sunCol.scale(glow * 1.2 * (1 - thick))) // silver lining near the sun
					a := dens * lerp(0.35, 1, f)
					c = c.mix(cc.mix(sky, 1-f), a)
				}
			}
			row[3*x] = toByte(c.r)
			row[3*x+1] = toByte(c.g)
			row[3*x+2] = toByte(c.b)
		}
	}
}

func toByte(v float64) byte {
	if v <= 0 {
		return 0
	}
	if v >= 1 {
		return 255
	}
	return byte(float64(v*255) + 0.5)
}
