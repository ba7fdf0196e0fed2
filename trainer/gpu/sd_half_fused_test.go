package gpu

import (
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// The SD VAE's 16-bit convolutions fuse every GroupNorm+SiLU before a
// convolution, every upsample and end padding, and every ResBlock's add
// (sd_half_fused.go); the mid attention's norm and add stay unfused, and
// nothing fuses where the convolution filters are not 16-bit.
func TestHalfChainsOfTheSDVAE(t *testing.T) {
	cfg := model.VAEConfig{InChannels: 3, OutChannels: 3, BlockOutChannels: []int{128, 256, 512, 512}, LayersPerBlock: 2,
		LatentChannels: 4, NormGroups: 32, ScalingFactor: 0.18215, UseQuantConv: true, UsePostQuantConv: true}
	enc, err := model.DescribeVAEEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := model.DescribeVAEDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name                  string
		net                   *model.Net
		gn, up, pad, add, all int
	}{{"encoder", enc, 21, 0, 3, 10, 26}, {"decoder", dec, 29, 3, 0, 14, 34}} {
		p, err := newSDPlan(c.net, 8, 1, 512, 512, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := &SDNet{p: p, halfW: map[string]*cuda.Tensor{}}
		if n := len(s.findHalfChains().first); n != 0 {
			t.Errorf("%s: %d chains without 16-bit filters", c.name, n)
		}
		for _, l := range c.net.Layers {
			if l.Kind == model.Conv2D || l.Kind == model.Conv2DPadEnd {
				s.halfW[l.Params[0]] = &cuda.Tensor{}
			}
		}
		hc := s.findHalfChains()
		var gn, up, pad, add int
		for first, ch := range hc.first {
			l := c.net.Layers[first]
			switch {
			case ch.gn >= 0:
				gn++
				if l.Kind != model.GroupNorm || c.net.Layers[ch.gn+1].Kind != model.SiLU {
					t.Errorf("%s: chain at %s is not a GroupNorm+SiLU", c.name, l.Name)
				}
			case ch.up >= 0:
				up++
			case c.net.Layers[ch.conv].Kind == model.Conv2DPadEnd:
				pad++
			}
			if ch.add >= 0 {
				add++
				if c.net.Layers[ch.add].Kind != model.Add || ch.last != ch.add {
					t.Errorf("%s: chain at %s ends at layer %d, not its add", c.name, l.Name, ch.last)
				}
			}
			for j := first + 1; j <= ch.last; j++ {
				if hc.inner[j] != first {
					t.Errorf("%s: layer %d is not marked inside the chain at %d", c.name, j, first)
				}
			}
		}
		if gn != c.gn || up != c.up || pad != c.pad || add != c.add || len(hc.first) != c.all {
			t.Errorf("%s: %d chains (%d group norm, %d upsample, %d pad, %d add), want %d (%d, %d, %d, %d)",
				c.name, len(hc.first), gn, up, pad, add, c.all, c.gn, c.up, c.pad, c.add)
		}
	}
}
