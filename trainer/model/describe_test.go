package model

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/diffusion"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// The description carries the constants executors used to hard-code: the
// loss skip and each group norm's eps.
func TestDescriptionCarriesConstants(t *testing.T) {
	for _, video := range []bool{false, true} {
		net, err := Describe(small(), video)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if video {
			want = 1
		}
		if net.LossSkip != want {
			t.Errorf("video=%v: LossSkip %d, want %d", video, net.LossSkip, want)
		}
		norms := 0
		for _, l := range net.Layers {
			if l.Kind == GroupNorm {
				norms++
				if l.Eps != nn.DefaultGroupNormEps {
					t.Errorf("%s: eps %g, want %g", l.Name, l.Eps, nn.DefaultGroupNormEps)
				}
			}
		}
		if norms == 0 {
			t.Fatal("no group norm layer")
		}
	}
}

// Both CPU executors read each layer's eps from the description: a larger
// eps changes their output, and they still agree exactly.
func TestExecutorsReadEps(t *testing.T) {
	cfg := small()
	p, err := NewParams(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 1))
	const B, T, H, W = 1, 2, 8, 8
	in := randSlice(rng, B*T*cfg.InChannels*H*W)
	ts := diffusion.FrameTimesteps([]int{40}, T)
	net, err := Describe(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	base, err := Interpret(net, p, B, T, H, W, in, ts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range net.Layers {
		if net.Layers[i].Kind == GroupNorm {
			net.Layers[i].Eps = 10
		}
	}
	wide, err := Interpret(net, p, B, T, H, W, in, ts)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(base, wide); d == 0 {
		t.Error("Interpret ignores the layers' eps")
	}
	fg, err := build(nn.NewGraph(), net, p, B, T, H, W, func(*Param) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	got, err := fg.Predict(in, ts)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got, wide); d != 0 {
		t.Errorf("graph and interpreter differ by %g with eps 10: the graph ignores the layers' eps", d)
	}
}

// A parameter shared by two layers is refused by the description's check
// and by every executor here, with both layers named.
func TestSharedParameterRefused(t *testing.T) {
	cfg := small()
	p, err := NewParams(cfg, 4)
	if err != nil {
		t.Fatal(err)
	}
	net, err := Describe(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	var convs []int
	for i, l := range net.Layers {
		if l.Kind == Conv2D && strings.HasSuffix(l.Name, ".conv2") {
			convs = append(convs, i)
		}
	}
	if len(convs) < 2 {
		t.Fatalf("want two conv2 layers, got %v", convs)
	}
	a, b := net.Layers[convs[0]], net.Layers[convs[1]]
	net.Layers[convs[1]].Params = a.Params
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s accepted a parameter shared by %s and %s", what, a.Name, b.Name)
		}
		for _, s := range []string{a.Params[0], a.Name, b.Name} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not name %s", what, err, s)
			}
		}
	}
	check("Check", net.Check())
	const B, T, H, W = 1, 1, 8, 8
	_, err = Interpret(net, p, B, T, H, W, make([]float32, B*T*cfg.InChannels*H*W), make([]float32, B*T))
	check("Interpret", err)
	_, err = build(nn.NewGraph(), net, p, B, T, H, W, func(*Param) bool { return true })
	check("the Gorgonia graph", err)
}
