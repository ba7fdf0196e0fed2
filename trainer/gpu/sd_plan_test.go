package gpu

import (
	"strings"
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/model"
)

// The SD executor's plan accepts every layer kind of the SD-1.5 nets (the
// inflated inpainting UNet, the VAE encoder and decoder, the CLIP text
// encoder), takes gradients for the temporal parameters only, and keeps
// no attention scores: backward reads each attention's q, k and v.
func TestSDPlanAcceptsSDNets(t *testing.T) {
	temporal := func(p model.ParamSpec) bool { return p.Temporal }
	unet, err := model.DescribeUNet(model.SD15UNet(9), model.UNetOptions{Pseudo3D: true, GroupNorm: model.GroupNormJoint})
	if err != nil {
		t.Fatal(err)
	}
	p, err := newSDPlan(unet, 1, 25, 64, 64, temporal)
	if err != nil {
		t.Fatal(err)
	}
	_, want := unet.ParamCount()
	got := 0
	for _, s := range unet.Params {
		if p.trainable[s.Name] {
			got += s.Size()
			if !strings.Contains(s.Name, "temporal") {
				t.Errorf("frozen %s is trainable", s.Name)
			}
		}
	}
	if got != want {
		t.Errorf("%d trainable values, want %d", got, want)
	}
	kinds := map[model.LayerKind]bool{}
	for i, l := range unet.Layers {
		kinds[l.Kind] = true
		if l.Kind == model.SeqAttention && p.backward[i] && !(p.saves[i][0] && p.saves[i][1] && p.saves[i][2]) {
			t.Errorf("attention %s does not keep q, k and v", l.Name)
		}
	}
	if !p.backward[0+len(unet.Layers)-1] || !p.reqGrad[unet.Output] {
		t.Error("no gradient reaches the output")
	}
	vcfg := model.VAEConfig{InChannels: 3, OutChannels: 3, BlockOutChannels: []int{128, 256, 512, 512}, LayersPerBlock: 2,
		LatentChannels: 4, NormGroups: 32, ScalingFactor: 0.18215, UseQuantConv: true, UsePostQuantConv: true}
	enc, err := model.DescribeVAEEncoder(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := model.DescribeVAEDecoder(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	ccfg, err := model.ParseCLIPTextConfig([]byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	clip, err := model.DescribeCLIPText(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		net  *model.Net
		h, w int
	}{{enc, 512, 512}, {dec, 512, 512}, {clip, 1, 1}} {
		p, err := newSDPlan(c.net, 8, 1, c.h, c.w, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range c.net.Layers {
			kinds[l.Kind] = true
			if p.backward[i] {
				t.Errorf("forward-only net: layer %s runs a backward pass", l.Name)
			}
		}
	}
	for k := range kinds {
		if !sdKinds[k] {
			t.Errorf("kind %s is not supported", k)
		}
	}
	t.Logf("%d layer kinds across the SD nets", len(kinds))
	// the pixel model's packed attention is refused with a clear error
	pix, err := model.Describe(model.Tiny(), true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newSDPlan(pix, 1, 2, 16, 16, nil); err == nil || !strings.Contains(err.Error(), "packed attention") {
		t.Errorf("pixel model: %v, want a packed-attention error", err)
	}
}
