package model

import (
	"testing"
)

// The full-size configs' parameter counts, from the description alone
// (the reference harness's counts: diffusers' UNet2DConditionModel and the
// seed recipe's inflation).
func TestSDParamCounts(t *testing.T) {
	cases := []struct {
		name            string
		in              int
		opt             UNetOptions
		total, temporal int
	}{
		{"SD-1.5", 4, UNetOptions{}, 859_520_964, 0},
		{"SD-1.5 inpainting", 9, UNetOptions{}, 859_535_364, 0},
		{"SD-1.5 inpainting pseudo-3D", 9, UNetOptions{Pseudo3D: true}, 1_100_578_616, 241_043_252},
		{"SD-1.5 inpainting pseudo-3D joint", 9, UNetOptions{Pseudo3D: true, GroupNorm: GroupNormJoint}, 1_100_578_616, 241_043_252},
	}
	for _, c := range cases {
		net, err := DescribeUNet(SD15UNet(c.in), c.opt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		total, temporal := net.ParamCount()
		if total != c.total || temporal != c.temporal {
			t.Errorf("%s: %d parameters (%d temporal), want %d (%d)", c.name, total, temporal, c.total, c.temporal)
		}
	}
}
