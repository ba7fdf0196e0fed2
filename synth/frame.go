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

// renderFrame draws the scene at fp into dst (w*h*3 bytes, rgb24) on
// workers goroutines: first the cloud density on the half-resolution grid,
// then the pixels. Rows are dealt out in small interleaved bands, since sky
// rows cost far more than land rows.
func (sc *scene) renderFrame(dst []byte, fp frameParams, workers int) {
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	fr := sc.frameState(fp)
	parallel(workers, sc.gh, func(y int) { sc.densityRow(fr, y) })
	parallel(workers, sc.h, func(y int) { sc.renderRow(dst, fr, y) })
}

// band is how many consecutive rows a worker takes at a time.
const band = 4

// parallel calls row(y) for y in [0, n) on workers goroutines, each taking
// interleaved bands of rows.
func parallel(workers, n int, row func(y int)) {
	if workers <= 1 || n < 2*band {
		for y := 0; y < n; y++ {
			row(y)
		}
		return
	}
	var wg sync.WaitGroup
	for k := 0; k < workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for y0 := k * band; y0 < n; y0 += workers * band {
				for y := y0; y < min(y0+band, n); y++ {
					row(y)
				}
			}
		}()
	}
	wg.Wait()
}

// densityRow samples the two drifting cloud fields on grid row gy; their
// relative motion makes shapes grow and dissolve as they travel.
func (sc *scene) densityRow(fr *frameState, gy int) {
	for i := gy * sc.gw; i < (gy+1)*sc.gw; i++ {
		u, v := float64(sc.gu[i]), float64(sc.gv[i])
		sc.dens[i] = float64(0.68*sc.big.at(u-fr.offU, v-fr.offV)) +
			float64(0.32*sc.small.at(float64(2*u)-fr.off2U, float64(2*v)-fr.off2V))
	}
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

func (sc *scene) renderRow(dst []byte, fr *frameState, y int) {
	w := sc.w
	// Sky gradient: horizon colour low, zenith high.
	v := clamp01((sc.horizon - float64(y)) / sc.horizon)
	sky := fr.horizon.mix(fr.zenith, math.Sqrt(v))
	dy := float64(y) + 0.5 - fr.sunY
	glowY := expDet(-dy*dy*fr.glowR2) * 0.55 * fr.strength
	row := dst[y*w*3 : (y+1)*w*3]
	// Grid rows above and below, and the vertical weight (0 or 1/2).
	g0 := (y / 2) * sc.gw
	g1 := g0 + sc.gw
	ty := float64(y&1) * 0.5
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
			// Clouds: density interpolated from the grid.
			gx, tx := x/2, float64(x&1)*0.5
			d := sc.dens
			n := lerp(lerp(d[g0+gx], d[g0+gx+1], tx), lerp(d[g1+gx], d[g1+gx+1], tx), ty)
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

func toByte(v float64) byte {
	if v <= 0 {
		return 0
	}
	if v >= 1 {
		return 255
	}
	return byte(float64(v*255) + 0.5)
}
