package model

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
)

const golden = "testdata/sd-golden"

// relErr is max |got - want| / max |want|: the worst error relative to
// the tensor's scale.
func relErr(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = math.Max(m, math.Abs(float64(want[i])))
	}
	return d / math.Max(m, 1e-30)
}

func readCases(t *testing.T, name string) *checkpoint.File {
	t.Helper()
	f, err := checkpoint.Read(filepath.Join(golden, name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// loadFolderUNet reads a diffusers unet folder (config.json and
// diffusion_pytorch_model.safetensors) into a described net.
func loadFolderUNet(t *testing.T, dir string, opt UNetOptions) (*Net, *Params) {
	t.Helper()
	cfgData, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseUNetConfig(cfgData)
	if err != nil {
		t.Fatal(err)
	}
	net, err := DescribeUNet(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewNetParams(net, 1)
	if err != nil {
		t.Fatal(err)
	}
	f, err := checkpoint.Read(filepath.Join(dir, "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := LoadWeights(p, FileSource{f}, nil, false); err != nil {
		t.Fatal(err)
	}
	return net, p
}

// The tiny UNet and inpainting UNet reproduce diffusers' outputs, and
// every marked block output on the way.
func TestUNetMatchesDiffusers(t *testing.T) {
	cases := readCases(t, "sd-tiny-unet-cases.safetensors")
	for _, c := range []struct{ prefix, dir string }{
		{"unet", "sd-tiny/unet"},
		{"unet_inpaint", "sd-tiny-inpaint/unet"},
	} {
		net, p := loadFolderUNet(t, filepath.Join(golden, c.dir), UNetOptions{})
		x := cases.Tensors[c.prefix+".sample"]
		in := Inputs{Input: x.Data, Timesteps: cases.Tensors[c.prefix+".timestep"].Data, Context: cases.Tensors[c.prefix+".context"].Data}
		B, H, W := x.Shape[0], x.Shape[2], x.Shape[3]
		vals, err := InterpretValues(net, p, B, 1, H, W, in)
		if err != nil {
			t.Fatal(err)
		}
		worst, worstAt := 0.0, ""
		for mark, v := range net.Marks {
			want, ok := cases.Tensors[c.prefix+".act."+mark]
			if !ok {
				t.Errorf("%s: no reference for %s", c.prefix, mark)
				continue
			}
			if e := relErr(vals[v], want.Data); e > worst {
				worst, worstAt = e, mark
			}
		}
		e := relErr(vals[net.Output], cases.Tensors[c.prefix+".out"].Data)
		t.Logf("%s: output rel err %.3g; worst block output %s %.3g", c.prefix, e, worstAt, worst)
		if e > 1e-4 || worst > 1e-4 {
			t.Errorf("%s: output rel err %.3g, worst block %s %.3g: want <= 1e-4", c.prefix, e, worstAt, worst)
		}
	}
}

// The recipe's pseudo-3D folder, with joint group norms, reproduces the
// recipe's output on one clip of 4 frames; the Gorgonia graph agrees with
// the interpreter.
func TestPseudo3DMatchesRecipe(t *testing.T) {
	cases := readCases(t, "sd-tiny-pseudo3d-cases.safetensors")
	net, p := loadFolderUNet(t, filepath.Join(golden, "sd-tiny-pseudo3d/unet"), UNetOptions{Pseudo3D: true, GroupNorm: GroupNormJoint})
	x := cases.Tensors["p3d.sample"]
	in := Inputs{Input: x.Data, Timesteps: cases.Tensors["p3d.timestep"].Data, Context: cases.Tensors["p3d.context"].Data}
	T, H, W := x.Shape[0], x.Shape[2], x.Shape[3]
	got, err := InterpretInputs(net, p, 1, T, H, W, in)
	if err != nil {
		t.Fatal(err)
	}
	want := cases.Tensors["p3d.out"].Data
	e := relErr(got, want)
	t.Logf("p3d joint: rel err %.3g", e)
	if e > 1e-4 {
		t.Errorf("pseudo-3D output rel err %.3g > 1e-4", e)
	}
	// per-frame norms are a different model: the fixture tells them apart
	pf, _ := loadFolderUNet(t, filepath.Join(golden, "sd-tiny-pseudo3d/unet"), UNetOptions{Pseudo3D: true})
	other, err := InterpretInputs(pf, p, 1, T, H, W, in)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(other, want); e < 1e-3 {
		t.Errorf("per-frame norms also match the joint fixture (rel err %.3g): the test cannot tell them apart", e)
	}

	fg, err := BuildNetForward(net, p, 1, T, H, W)
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	if err := fg.SetContext(in.Context); err != nil {
		t.Fatal(err)
	}
	g, err := fg.Predict(in.Input, in.Timesteps)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(g, got); e > 1e-6 {
		t.Errorf("graph and interpreter differ: rel %.3g", e)
	}
}
