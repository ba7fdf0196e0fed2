package weights

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

func TestOpenDiffusersFolder(t *testing.T) {
	m := mustOpen(t, "testdata/sd-tiny")
	if m.Layout != "diffusers" || m.Inpainting || m.Pseudo3D || len(m.Components) != 3 {
		t.Fatalf("layout %s inpainting %v pseudo3d %v components %d", m.Layout, m.Inpainting, m.Pseudo3D, len(m.Components))
	}
	u := m.Components[UNet]
	if n := len(u.Names()); n != 684 {
		t.Fatalf("unet has %d tensors, want 684", n)
	}
	ti, _ := u.Info("conv_in.weight")
	if ti.Dtype != F32 || !reflect.DeepEqual(ti.Shape, []int{16, 4, 3, 3}) {
		t.Fatalf("conv_in.weight: %+v", ti)
	}
	if ti, _ := m.Components[VAE].Info("encoder.mid_block.attentions.0.to_q.weight"); ti.Dtype != F16 || len(ti.Shape) != 2 {
		t.Fatalf("vae attention: %+v", ti)
	}
	if _, ok := m.Components[TextEncoder].Info("embeddings.token_embedding.weight"); !ok {
		t.Fatal("text encoder token embedding missing")
	}
	// the component folder alone opens the same tensors
	c := mustOpen(t, "testdata/sd-tiny/unet")
	sameValues(t, "unet folder", c.Components[UNet], u)
}

func TestOpenInpaintingAndPseudo3D(t *testing.T) {
	m := mustOpen(t, "testdata/sd-tiny-inpaint")
	if !m.Inpainting || m.Pseudo3D {
		t.Fatalf("inpainting %v pseudo3d %v", m.Inpainting, m.Pseudo3D)
	}
	if ti, _ := m.Components[UNet].Info("conv_in.weight"); ti.Dtype != F16 || ti.Shape[1] != 9 {
		t.Fatalf("conv_in: %+v", ti)
	}
	p := mustOpen(t, "testdata/sd-tiny-pseudo3d")
	if !p.Pseudo3D || !p.Inpainting || p.Layout != "pseudo3d" {
		t.Fatalf("pseudo3d: layout %s pseudo3d %v inpainting %v", p.Layout, p.Pseudo3D, p.Inpainting)
	}
	if n := len(p.Components[UNet].Names()); n != 926 {
		t.Fatalf("pseudo3d unet has %d tensors, want 926", n)
	}
	// its spatial weights are the inpainting UNet's
	a := readAll(t, p.Components[UNet], "down_blocks.1.resnets.0.conv1.spatial_conv.weight")
	b := readAll(t, m.Components[UNet], "down_blocks.1.resnets.0.conv1.weight")
	if !reflect.DeepEqual(a, b) {
		t.Fatal("pseudo-3D spatial conv differs from the inpainting UNet's conv")
	}
}

// The single file maps name by name and value by value onto the diffusers
// folder, and its inferred configs agree with the fixture's on every field
// the tensors decide.
func TestOpenSingleFile(t *testing.T) {
	single := mustOpen(t, "testdata/sd-tiny-ldm.safetensors")
	folder := mustOpen(t, "testdata/sd-tiny")
	if single.Layout != "single-file" || single.Inpainting || len(single.Components) != 3 {
		t.Fatalf("layout %s inpainting %v components %d", single.Layout, single.Inpainting, len(single.Components))
	}
	for _, c := range Components {
		sameValues(t, string(c), single.Components[c], folder.Components[c])
	}
	want := map[Component][]string{
		UNet:        {"in_channels", "out_channels", "block_out_channels", "layers_per_block", "down_block_types", "up_block_types", "cross_attention_dim", "use_linear_projection"},
		VAE:         {"in_channels", "out_channels", "block_out_channels", "layers_per_block", "latent_channels"},
		TextEncoder: {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "max_position_embeddings"},
	}
	for c, fields := range want {
		for _, f := range fields {
			got, ref := configField(t, single.Configs[c], f), configField(t, folder.Configs[c], f)
			if fmt.Sprint(got) != fmt.Sprint(ref) {
				t.Errorf("%s config %s = %v, the fixture has %v", c, f, got, ref)
			}
		}
	}
	if len(single.Notes) == 0 {
		t.Error("no note on the assumed config fields")
	}
	// overrides give the fields the tensors cannot tell
	o, err := OpenWith("testdata/sd-tiny-ldm.safetensors", Options{Configs: goldenConfigs(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if h := configField(t, o.Configs[UNet], "attention_head_dim"); h != 2.0 {
		t.Fatalf("override attention_head_dim: %v", h)
	}
	if g := configField(t, o.Configs[VAE], "norm_num_groups"); g != 4.0 {
		t.Fatalf("override vae norm_num_groups: %v", g)
	}
}

// The full-size configs' parameter counts: the published SD-1.5 sizes and
// the recipe's inflated UNet (the reference harness's counts).
func TestFullSizeParamCounts(t *testing.T) {
	sd := sd15UNetConfig(4)
	if n := countParams(unetParams(sd, false)); n != 859_520_964 {
		t.Errorf("SD-1.5 UNet: %d parameters", n)
	}
	inp := sd15UNetConfig(9)
	if n := countParams(unetParams(inp, false)); n != 859_535_364 {
		t.Errorf("SD-1.5 inpainting UNet: %d parameters", n)
	}
	p3d := unetParams(inp, true)
	var temporal int64
	for _, p := range p3d {
		if containsTemporal(p.name) {
			temporal += int64(numel(p.shape))
		}
	}
	if n := countParams(p3d); n != 1_100_578_616 || temporal != 241_043_252 {
		t.Errorf("pseudo-3D: %d parameters, %d temporal", n, temporal)
	}
	if n := countParams(vaeParams(sd15VAEConfig())); n != 83_653_863 {
		t.Errorf("SD VAE: %d parameters", n)
	}
	if n := countParams(clipParams(sd15CLIPConfig())); n != 123_060_480 {
		t.Errorf("CLIP ViT-L/14 text: %d parameters", n)
	}
}

func containsTemporal(n string) bool {
	for i := 0; i+8 <= len(n); i++ {
		if n[i:i+8] == "temporal" {
			return true
		}
	}
	return false
}

func sd15UNetConfig(in int) *unetConfig {
	b, _ := json.Marshal(map[string]any{"in_channels": in, "out_channels": 4, "block_out_channels": []int{320, 640, 1280, 1280},
		"layers_per_block": 2, "down_block_types": []string{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
		"up_block_types": []string{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}, "cross_attention_dim": 768})
	c, err := parseUNetConfig(b)
	if err != nil {
		panic(err)
	}
	return c
}

func sd15VAEConfig() *vaeConfig {
	b, _ := json.Marshal(map[string]any{"in_channels": 3, "out_channels": 3, "block_out_channels": []int{128, 256, 512, 512},
		"layers_per_block": 2, "latent_channels": 4, "down_block_types": []string{"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"},
		"up_block_types": []string{"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"}})
	c, err := parseVAEConfig(b)
	if err != nil {
		panic(err)
	}
	return c
}

func sd15CLIPConfig() *clipConfig {
	return &clipConfig{VocabSize: 49408, HiddenSize: 768, IntermediateSize: 3072, NumHiddenLayers: 12, MaxPositionEmbeddings: 77}
}

// Sources may be read from several goroutines at once (loaders do).
func TestConcurrentReads(t *testing.T) {
	m := mustOpen(t, "testdata/sd-tiny-ldm.safetensors")
	u := m.Components[UNet]
	names := u.Names()
	want := map[string][]float32{}
	for _, n := range names {
		want[n] = readAll(t, u, n)
	}
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func(g int) {
			for i := g; i < len(names); i += 4 {
				ti, _ := u.Info(names[i])
				dst := make([]float32, ti.Numel())
				if err := u.Read(names[i], dst); err != nil {
					errs <- err
					return
				}
				if !reflect.DeepEqual(dst, want[names[i]]) {
					errs <- fmt.Errorf("%s differs when read concurrently", names[i])
					return
				}
			}
			errs <- nil
		}(g)
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
