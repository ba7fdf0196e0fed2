package model

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// UNet is an SD UNet ready to run: its config, options, description and
// parameters.
type UNet struct {
	Config  UNetConfig
	Options UNetOptions
	Net     *Net
	Params  *Params
}

// WeightsSource adapts a trainer/weights source to LoadWeights.
type WeightsSource struct{ S weights.Source }

func (s WeightsSource) Names() []string { return s.S.Names() }

func (s WeightsSource) TensorShape(name string) ([]int, bool) {
	ti, ok := s.S.Info(name)
	return ti.Shape, ok
}

func (s WeightsSource) Read(name string, dst []float32) error { return s.S.Read(name, dst) }

// configGroupNorm is the key our exported pseudo-3D config records the
// group-norm mode under.
const configGroupNorm = "group_norm"

// LoadUNet opens the UNet at path (any layout trainer/weights reads: a
// diffusers folder or unet folder, an original-layout single file, the
// recipe's pseudo-3D folder) and loads it by name. A pseudo-3D file loads
// as the video model; its group-norm mode is opt.GroupNorm, else the one
// its config records, else joint (the recipe's code). A 2D file with
// opt.Pseudo3D is inflated (see Inflate) with fresh temporal layers.
func LoadUNet(path string, wopt weights.Options, opt UNetOptions) (*UNet, error) {
	m, err := weights.OpenWith(path, wopt)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	src, ok := m.Components[weights.UNet]
	if !ok {
		return nil, fmt.Errorf("model: %s holds no UNet", path)
	}
	raw := m.Configs[weights.UNet]
	cfg, err := ParseUNetConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	if m.Pseudo3D {
		opt.Pseudo3D = true
		if opt.GroupNorm == "" {
			var c map[string]any
			_ = json.Unmarshal(raw, &c)
			opt.GroupNorm = GroupNormJoint
			if g, ok := c[configGroupNorm].(string); ok {
				opt.GroupNorm = g
			}
		}
		u, err := NewUNet(cfg, opt, 0)
		if err != nil {
			return nil, err
		}
		if err := LoadWeights(u.Params, WeightsSource{src}, nil, false); err != nil {
			return nil, fmt.Errorf("model: %s: %w", path, err)
		}
		return u, nil
	}
	base, err := NewUNet(cfg, UNetOptions{ContextLen: opt.ContextLen}, 0)
	if err != nil {
		return nil, err
	}
	if err := LoadWeights(base.Params, WeightsSource{src}, nil, false); err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	if !opt.Pseudo3D {
		return base, nil
	}
	return Inflate(base, opt, 1)
}

// NewUNet describes cfg and allocates its parameters, initialised from
// seed.
func NewUNet(cfg UNetConfig, opt UNetOptions, seed uint64) (*UNet, error) {
	net, err := DescribeUNet(cfg, opt)
	if err != nil {
		return nil, err
	}
	p, err := NewNetParams(net, seed)
	if err != nil {
		return nil, err
	}
	return &UNet{Config: cfg, Options: opt, Net: net, Params: p}, nil
}

// BackboneName maps a parameter of the pseudo-3D layout to the 2D UNet's
// name it was inflated from ("conv_in.spatial_conv.weight" ->
// "conv_in.weight"); temporal parameters have none ("").
func BackboneName(name string) string {
	if IsTemporal(name) {
		return ""
	}
	return strings.Replace(name, ".spatial_conv.", ".", 1)
}

// Inflate returns the pseudo-3D video model of a 2D UNet: its weights
// become the spatial layers, and the temporal layers start fresh
// (identity temporal convs, zero temporal output projections, seeded
// query/key/value projections), so with per-frame group norms the video
// model equals the backbone applied frame by frame.
func Inflate(base *UNet, opt UNetOptions, seed uint64) (*UNet, error) {
	if base.Options.Pseudo3D {
		return nil, fmt.Errorf("model: inflate: the UNet is pseudo-3D already")
	}
	opt.Pseudo3D = true
	u, err := NewUNet(base.Config, opt, 0)
	if err != nil {
		return nil, err
	}
	u.Params.InitTemporal(seed)
	for _, q := range u.Params.List {
		if q.Temporal {
			continue
		}
		src := base.Params.Get(BackboneName(q.Name))
		if src == nil || len(src.Data) != len(q.Data) {
			return nil, fmt.Errorf("model: inflate: no backbone parameter for %s", q.Name)
		}
		copy(q.Data, src.Data)
	}
	return u, nil
}
