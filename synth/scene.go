package synth

import (
	"math"
)

// scene is everything about a video that does not change from frame to
// frame: derived from the seed once, with per-pixel geometry precomputed so a
// frame costs two texture lookups per sky pixel.
type scene struct {
	w, h int

	horizon float64 // horizon row (sky above, land below)
	focal   float64 // pixels per unit of view-plane distance

	// Per pixel: 0 = sky, 1+i = land layer i (far to near).
	layer []uint8
	// Cloud-plane coordinates in texels on a grid of every other pixel
	// (gw x gh points; point (gx, gy) sits on pixel (2gx, 2gy)): cloud
	// density is sampled there and interpolated, a quarter of the texture
	// lookups. skyRows is one past the last pixel row holding sky.
	gu, gv  []float32
	gw, gh  int
	skyRows int
	dens    []float64 // per-frame density on the grid (reused)
	// Per sky pixel: a fade (1 high in the sky, 0 at the horizon) for haze.
	fade []float32
	// Per land pixel: a static shade (texture and distance haze) in [0, 1].
	shade []float32
	// Land layer albedos, far to near, and their haze amount.
	albedo []rgb
	haze   []float64

	big, small texture // two cloud fields drifting at different speeds
	coverage   float64 // density threshold where clouds begin
	softness   float64

	// Motion: wind in texels per second on the cloud plane for the big
	// field; the small one drifts faster and slightly off-axis, so cloud
	// shapes change as well as move.
	windU, windV   float64
	wind2U, wind2V float64

	// Light over the clip: sun elevation (degrees) and horizontal position
	// (fraction of width) at the start and end of the motion.
	elev0, elev1 float64
	sunX0, sunX1 float64
}

// Scene streams, so adding a use of randomness in one part does not shift
// the others.
const (
	streamLand = iota + 1
	streamClouds
	streamWind
	streamLight
)

func newScene(s Spec) *scene {
	w, h := s.Width, s.Height
	sc := &scene{w: w, h: h}

	lr := newRNG(s.Seed, streamLand)
	sc.horizon = float64(h) * lr.between(0.56, 0.72)
	sc.focal = float64(max(w, h)) * 0.9

	// Land: two or three ridges, the far ones higher and hazier.
	nl := 2 + lr.intn(2)
	tops := make([][]float64, nl)
	palettes := []rgb{hexRGB(0x3c4a3a), hexRGB(0x2f3d2a), hexRGB(0x4a4030), hexRGB(0x35403f), hexRGB(0x463a2c)}
	for i := 0; i < nl; i++ {
		depth := float64(i) / float64(nl-1) // 0 far, 1 near
		prof := ridge(lr, w, 3+lr.intn(4), 5, lr.between(0.4, 0.6))
		amp := float64(h) * lerp(0.08, 0.22, lr.float()) * lerp(1, 0.6, depth)
		base := sc.horizon + float64(float64(h)*0.06*depth)
		top := make([]float64, w)
		for x := range top {
			top[x] = base - float64(amp*prof[x])
		}
		tops[i] = top
		sc.albedo = append(sc.albedo, palettes[lr.intn(len(palettes))].scale(lerp(0.7, 1.2, depth)))
		sc.haze = append(sc.haze, 0.55*(1-depth))
	}
	grain := fbmTexture(lr, 32, 4, 0.55)

	cr := newRNG(s.Seed, streamClouds)
	sc.big = fbmTexture(cr, 4, 6, 0.5)
	sc.small = fbmTexture(cr, 8, 5, 0.55)
	sc.coverage = cr.between(0.38, 0.6)
	sc.softness = cr.between(0.12, 0.25)
	planeScale := cr.between(60, 100) // texels per unit on the cloud plane

	wr := newRNG(s.Seed, streamWind)
	dir := wr.between(0, 2*math.Pi)
	speed := wr.between(12, 28) // texels per second
	cos, sin := unitDet(dir)
	sc.windU, sc.windV = speed*cos, speed*sin
	d2 := dir + wr.between(-0.5, 0.5)
	s2 := speed * wr.between(1.4, 2.0)
	cos, sin = unitDet(d2)
	sc.wind2U, sc.wind2V = s2*cos, s2*sin

	gr := newRNG(s.Seed, streamLight)
	switch gr.intn(3) {
	case 0: // sunset
		sc.elev0 = gr.between(8, 22)
		sc.elev1 = sc.elev0 - gr.between(12, 20)
	case 1: // sunrise
		sc.elev0 = gr.between(-6, 2)
		sc.elev1 = sc.elev0 + gr.between(10, 18)
	default: // day, sun climbing or sinking
		sc.elev0 = gr.between(20, 40)
		sc.elev1 = sc.elev0 + gr.between(-10, 10)
	}
	sc.sunX0 = gr.between(0.15, 0.85)
	sc.sunX1 = sc.sunX0 + gr.between(-0.12, 0.12)

	n := w * h
	sc.layer = make([]uint8, n)
	sc.fade = make([]float32, n)
	sc.shade = make([]float32, n)
	for y := 0; y < h; y++ {
		fy := float64(y) + 0.5
		for x := 0; x < w; x++ {
			i := y*w + x
			l := 0
			for k := nl - 1; k >= 0; k-- {
				if fy >= tops[k][x] {
					l = k + 1
					break
				}
			}
			sc.layer[i] = uint8(l)
			if l == 0 {
				sc.skyRows = y + 1
			}
			if l > 0 {
				below := (fy - tops[l-1][x]) / float64(h)
				g := grain.at(float64(x)*0.7, float64(y)*0.7)
				sc.shade[i] = float32(clamp01(0.75 + float64(0.35*g) - float64(0.8*below)))
				continue
			}
			sc.fade[i] = float32(smoothstep(0.01, 0.12, sc.elevation(fy)))
		}
	}
	// The cloud grid covers the sky rows (plus one grid row and column
	// beyond, for interpolation).
	sc.gw, sc.gh = w/2+2, (sc.skyRows+1)/2+1
	sc.gu = make([]float32, sc.gw*sc.gh)
	sc.gv = make([]float32, sc.gw*sc.gh)
	sc.dens = make([]float64, sc.gw*sc.gh)
	for gy := 0; gy < sc.gh; gy++ {
		up := sc.elevation(float64(2*gy) + 0.5)
		dist := cloudHeight / up
		for gx := 0; gx < sc.gw; gx++ {
			// Intersect the view ray with a horizontal cloud plane.
			side := (float64(2*gx) + 0.5 - float64(float64(w)/2)) / sc.focal
			sc.gu[gy*sc.gw+gx] = float32(side * dist * planeScale)
			sc.gv[gy*sc.gw+gx] = float32(dist * planeScale)
		}
	}
	return sc
}

// cloudHeight is the cloud plane's height above the eye (view-plane units).
const cloudHeight = 1.0

// elevation returns the view ray's slope above the horizon at pixel row
// centre fy, kept above a small minimum so the cloud plane stays finite.
func (sc *scene) elevation(fy float64) float64 {
	return max((sc.horizon-fy)/sc.focal, 0.004)
}
