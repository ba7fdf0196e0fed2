package model

import (
	"slices"
	"strings"
	"testing"
)

// mapSource is an in-memory WeightSource.
type mapSource map[string][]int

func (m mapSource) Names() []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (m mapSource) TensorShape(name string) ([]int, bool) { s, ok := m[name]; return s, ok }

func (m mapSource) Read(name string, dst []float32) error {
	for i := range dst {
		dst[i] = 0.5
	}
	return nil
}

// Weights that do not fit the network name what is missing, misshapen or
// left over.
func TestLoadWeightsErrors(t *testing.T) {
	cfg := SD15UNet(4)
	cfg.BlockOutChannels, cfg.AttentionHeadDim, cfg.NormNumGroups, cfg.CrossAttentionDim = []int{16, 16, 32, 32}, IntList{2}, 4, 16
	u, err := NewUNet(cfg, UNetOptions{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	full := mapSource{}
	for _, q := range u.Params.List {
		full[q.Name] = q.Shape
	}
	if err := LoadWeights(u.Params, full, nil, false); err != nil {
		t.Fatalf("a complete source: %v", err)
	}
	if u.Params.Get("conv_in.weight").Data[0] != 0.5 {
		t.Error("values not read")
	}
	for name, c := range map[string]struct {
		edit func(mapSource)
		want []string
	}{
		"missing": {func(m mapSource) { delete(m, "mid_block.resnets.0.conv1.weight") }, []string{"1 tensors missing", "mid_block.resnets.0.conv1.weight"}},
		"shape":   {func(m mapSource) { m["conv_in.weight"] = []int{16, 9, 3, 3} }, []string{"wrong shape", "conv_in.weight is [16 9 3 3], want [16 4 3 3]"}},
		"extra":   {func(m mapSource) { m["model.ema.decay"] = []int{1} }, []string{"1 unexpected tensors", "model.ema.decay"}},
		"many missing": {func(m mapSource) {
			for n := range m {
				if strings.Contains(n, "up_blocks") {
					delete(m, n)
				}
			}
		}, []string{"tensors missing", "more"}},
	} {
		m := mapSource{}
		for k, v := range full {
			m[k] = v
		}
		c.edit(m)
		err := LoadWeights(u.Params, m, nil, false)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to say %q", name, err, w)
			}
		}
	}
	// a 1x1 conv stored as a linear (or the reverse) loads
	c := mapSource{}
	for k, v := range full {
		c[k] = v
	}
	c["down_blocks.0.attentions.0.proj_in.weight"] = []int{16, 16}
	if err := LoadWeights(u.Params, c, nil, false); err != nil {
		t.Errorf("1x1 conv as [C, C]: %v", err)
	}
}
