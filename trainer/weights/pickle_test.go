package weights

import "testing"

func TestPickleFixtures(t *testing.T) {
	bin := mustOpen(t, "testdata/pickles/diffusion_pytorch_model.bin")
	folder := mustOpen(t, "testdata/sd-tiny/unet")
	if bin.Layout != "component-file" || len(bin.Components) != 1 {
		t.Fatalf("bin: layout %s, %d components", bin.Layout, len(bin.Components))
	}
	sameValues(t, "bin unet", bin.Components[UNet], folder.Components[UNet])
	ckpt := mustOpen(t, "testdata/pickles/sd-tiny-ldm.ckpt")
	single := mustOpen(t, "testdata/sd-tiny-ldm.safetensors")
	if ckpt.Layout != "single-file" {
		t.Fatalf("ckpt layout %s", ckpt.Layout)
	}
	for _, c := range Components {
		sameValues(t, "ckpt "+string(c), ckpt.Components[c], single.Components[c])
		if string(ckpt.Configs[c]) != string(single.Configs[c]) {
			t.Errorf("%s: ckpt config differs from the safetensors file's", c)
		}
	}
}
