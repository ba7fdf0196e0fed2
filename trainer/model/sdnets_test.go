package model

import (
	"math"
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/checkpoint"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// The tiny SD models of shared/sd-golden, as trainer/weights tests them.
var sdLayouts = map[string]string{
	"folder":      "../weights/testdata/sd-tiny",
	"single-file": "../weights/testdata/sd-tiny-ldm.safetensors",
}

func sdCases(t *testing.T) *checkpoint.File {
	t.Helper()
	f, err := checkpoint.Read("testdata/sd-tiny-cases.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func checkClose(t *testing.T, what string, got []float32, want checkpoint.Tensor, tol float64) {
	t.Helper()
	if len(got) != len(want.Data) {
		t.Fatalf("%s: %d values, want %d (shape %v)", what, len(got), len(want.Data), want.Shape)
	}
	if e := relErr(got, want.Data); !(e <= tol) {
		t.Errorf("%s: relative error %.3g, want <= %g", what, e, tol)
	} else {
		t.Logf("%s: relative error %.3g", what, e)
	}
}

// tinyOverrides are the config fields a single file cannot tell, from
// shared/sd-golden/configs.json (a real SD-1.5 file matches the defaults
// trainer/weights assumes).
var tinyOverrides = weights.Options{Configs: map[weights.Component][]byte{
	weights.VAE:         []byte(`{"norm_num_groups": 4}`),
	weights.TextEncoder: []byte(`{"num_attention_heads": 2}`),
}}

func openSD(t *testing.T, path string) *weights.Model {
	t.Helper()
	m, err := weights.OpenWith(path, tinyOverrides)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestVAEMatchesDiffusers: AutoencoderKL's encoder moments and decoder
// output, float32 on the CPU, from both layouts.
func TestVAEMatchesDiffusers(t *testing.T) {
	cases := sdCases(t)
	img := cases.Tensors["vae.image"]
	for layout, path := range sdLayouts {
		t.Run(layout, func(t *testing.T) {
			vae, err := OpenVAE(openSD(t, path))
			if err != nil {
				t.Fatal(err)
			}
			n, h, w := img.Shape[0], img.Shape[2], img.Shape[3]
			mean, logvar, err := vae.Encode(img.Data, n, h, w)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "vae.mean", mean, cases.Tensors["vae.mean"], 1e-4)
			checkClose(t, "vae.logvar", logvar, cases.Tensors["vae.logvar"], 1e-4)
			ref := cases.Tensors["vae.mean"]
			dec, err := vae.Decode(ref.Data, ref.Shape[0], ref.Shape[2], ref.Shape[3])
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "vae.decoded", dec, cases.Tensors["vae.decoded"], 1e-4)
			if vae.Config.ScalingFactor != 0.18215 {
				t.Errorf("scaling factor %v", vae.Config.ScalingFactor)
			}
		})
	}
}

// TestCLIPTextMatchesTransformers: CLIPTextModel's last_hidden_state of
// the first two public prompts, from both layouts.
func TestCLIPTextMatchesTransformers(t *testing.T) {
	cases := sdCases(t)
	idt := cases.Tensors["clip.ids"]
	var ids [][]int
	for i := 0; i < idt.Shape[0]; i++ {
		row := make([]int, idt.Shape[1])
		for j := range row {
			row[j] = int(idt.Data[i*idt.Shape[1]+j])
		}
		ids = append(ids, row)
	}
	for layout, path := range sdLayouts {
		t.Run(layout, func(t *testing.T) {
			te, err := OpenCLIPText(openSD(t, path))
			if err != nil {
				t.Fatal(err)
			}
			got, err := te.Encode(ids)
			if err != nil {
				t.Fatal(err)
			}
			checkClose(t, "clip.hidden", got, cases.Tensors["clip.hidden"], 1e-4)
		})
	}
}

// TestSD15Sizes: the descriptions at SD-1.5's sizes have the published
// parameter counts (VAE 83.65M, text encoder 123.06M).
func TestSD15Sizes(t *testing.T) {
	vc, err := ParseVAEConfig([]byte(`{"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "down_block_types": ["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"]}`))
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := DescribeVAEEncoder(vc)
	dec, _ := DescribeVAEDecoder(vc)
	a, _ := enc.ParamCount()
	b, _ := dec.ParamCount()
	if got := float64(a+b) / 1e6; math.Abs(got-83.65) > 0.005 {
		t.Errorf("VAE %.3fM parameters, want 83.65M", got)
	}
	cc, err := ParseCLIPTextConfig([]byte(`{"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12}`))
	if err != nil {
		t.Fatal(err)
	}
	te, _ := DescribeCLIPText(cc)
	if n, _ := te.ParamCount(); math.Abs(float64(n)/1e6-123.06) > 0.005 {
		t.Errorf("text encoder %.3fM parameters, want 123.06M", float64(n)/1e6)
	}
}

func TestSDNetsBadInput(t *testing.T) {
	m := openSD(t, sdLayouts["folder"])
	vae, err := OpenVAE(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := vae.Encode(make([]float32, 3*60*60), 1, 60, 60); err == nil || !strings.Contains(err.Error(), "multiple of 8") {
		t.Errorf("60x60 image: %v", err)
	}
	delete(m.Components, weights.VAE)
	if _, err := OpenVAE(m); err == nil || !strings.Contains(err.Error(), "no VAE") || !strings.Contains(err.Error(), m.Path) {
		t.Errorf("no VAE: %v", err)
	}
	te, err := OpenCLIPText(openSD(t, sdLayouts["folder"]))
	if err != nil {
		t.Fatal(err)
	}
	bad := make([]int, 77)
	bad[3] = 49408
	if _, err := te.Encode([][]int{bad}); err == nil || !strings.Contains(err.Error(), "49408") {
		t.Errorf("id out of range: %v", err)
	}
	if _, err := ParseVAEConfig([]byte(`{"down_block_types": ["CrossAttnDownBlock2D"]}`)); err == nil {
		t.Error("a UNet block type accepted as a VAE")
	}
}
