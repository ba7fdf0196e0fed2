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
// opt.Pseudo3D is inflated on the way (see Inflate; temporal layers from
// seed 1). Each tensor is read straight into its parameter.
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
	inflate := opt.Pseudo3D && !m.Pseudo3D
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
	}
	net, err := DescribeUNet(cfg, opt)
	if err != nil {
		return nil, err
	}
	p, err := allocParams(net)
	if err != nil {
		return nil, err
	}
	u := &UNet{Config: cfg, Options: opt, Net: net, Params: p}
	var ws WeightSource = WeightsSource{src}
	var skip func(string) bool
	if inflate {
		p.InitTemporal(1)
		ws = backboneSource{ws}
		skip = IsTemporal
	}
	if err := LoadWeights(p, ws, skip, false); err != nil {
		return nil, fmt.Errorf("model: %s: %w", path, err)
	}
	return u, nil
}

// backboneSource presents a 2D UNet's tensors under the pseudo-3D names
// (conv X.weight as X.spatial_conv.weight) for loading a backbone into an
// inflated net.
type backboneSource struct{ WeightSource }

func (s backboneSource) Names() []string {
	var out []string
	for _, n := range s.WeightSource.Names() {
		out = append(out, spatialName(n))
	}
	return out
}

func (s backboneSource) TensorShape(name string) ([]int, bool) {
	return s.WeightSource.TensorShape(BackboneName(name))
}

func (s backboneSource) Read(name string, dst []float32) error {
	return s.WeightSource.Read(BackboneName(name), dst)
}

// spatialName is the pseudo-3D name of a 2D UNet tensor: the weight and
// bias of every Conv2d but the transformers' proj_in/proj_out move under
// .spatial_conv (a 4-D weight tells a conv from a linear of the same name
// in SD-2 style linear projections, so only known conv names are moved).
func spatialName(name string) string {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return name
	}
	mod, leaf := name[:i], name[i+1:]
	last := mod[strings.LastIndexByte(mod, '.')+1:]
	switch last {
	case "conv_in", "conv_out", "conv1", "conv2", "conv_shortcut", "conv":
		return mod + ".spatial_conv." + leaf
	}
	return name
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
// become the spatial layers (sharing the backbone's memory, not copied),
// and the temporal layers start fresh from seed (identity temporal convs,
// zero temporal output projections, seeded query/key/value projections),
// so with per-frame group norms the video model equals the backbone
// applied frame by frame.
func Inflate(base *UNet, opt UNetOptions, seed uint64) (*UNet, error) {
	if base.Options.Pseudo3D {
		return nil, fmt.Errorf("model: inflate: the UNet is pseudo-3D already")
	}
	opt.Pseudo3D = true
	net, err := DescribeUNet(base.Config, opt)
	if err != nil {
		return nil, err
	}
	p := &Params{byName: make(map[string]*Param, len(net.Params))}
	for _, s := range net.Params {
		q := &Param{ParamSpec: s}
		if s.Temporal {
			q.Data = make([]float32, s.Size())
		} else {
			src := base.Params.Get(BackboneName(s.Name))
			if src == nil || len(src.Data) != s.Size() {
				return nil, fmt.Errorf("model: inflate: no backbone parameter for %s", s.Name)
			}
			q.Data = src.Data
		}
		p.List = append(p.List, q)
		p.byName[s.Name] = q
	}
	p.InitTemporal(seed)
	return &UNet{Config: base.Config, Options: opt, Net: net, Params: p}, nil
}
