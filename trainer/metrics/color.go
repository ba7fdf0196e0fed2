package metrics

import "image/color"

func plotColor(i int) color.Color {
	palette := []color.RGBA{{31, 119, 180, 255}, {214, 39, 40, 255}, {174, 199, 232, 255}}
	return palette[i%len(palette)]
}
