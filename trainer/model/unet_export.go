package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/timelapse-ml/pipeline/trainer/weights"
)

// The files of an exported UNet folder (diffusers' names).
const (
	unetConfigFile  = "config.json"
	unetWeightsFile = "diffusion_pytorch_model.safetensors"
)

// WriteFolder writes the UNet as a diffusers-style model folder: dir/unet/
// with config.json and diffusion_pytorch_model.safetensors, every
// parameter under its state-dict name (the recipe's names for a pseudo-3D
// UNet) in dtype F32 or F16. The config records the pseudo-3D layout and
// its group-norm mode. dir/unet must not exist or be empty: nothing is
// overwritten.
func (u *UNet) WriteFolder(dir string, dtype weights.Dtype) error {
	if dtype != weights.F32 && dtype != weights.F16 {
		return fmt.Errorf("model: export dtype %q, want F32 or F16", dtype)
	}
	out := filepath.Join(dir, "unet")
	if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
		return fmt.Errorf("model: export: %s exists and is not empty; not overwriting it", out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("model: export: %w", err)
	}
	cfg, err := u.configJSON()
	if err != nil {
		return err
	}
	if err := weights.WriteSafetensors(filepath.Join(out, unetWeightsFile), &paramSource{p: u.Params, dtype: dtype}, nil); err != nil {
		return fmt.Errorf("model: export: %w", err)
	}
	if err := os.WriteFile(filepath.Join(out, unetConfigFile), cfg, 0o644); err != nil {
		return fmt.Errorf("model: export: %w", err)
	}
	return nil
}

// configJSON is the diffusers config of the UNet, plus the pseudo-3D mode.
func (u *UNet) configJSON() ([]byte, error) {
	c := u.Config
	c.ClassName = "UNet2DConditionModel"
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("model: export config: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("model: export config: %w", err)
	}
	if u.Options.Pseudo3D {
		gn := u.Options.GroupNorm
		if gn == "" {
			gn = GroupNormPerFrame
		}
		m[configGroupNorm] = gn
		m["_note"] = "pseudo-3D layout of the seed recipe: every Conv2d but proj_in/proj_out is X.spatial_conv + " +
			"X.temporal_conv (Conv1d k3 over frames); BasicTransformerBlock gains norm_temporal + attn_temporal " +
			"after attn2; group_norm says whether resnet norms and conv_norm_out normalise per frame or jointly over frames"
	}
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("model: export config: %w", err)
	}
	return append(out, '\n'), nil
}

// paramSource presents parameters as a weights.Source in one dtype.
type paramSource struct {
	p     *Params
	dtype weights.Dtype
}

func (s *paramSource) Names() []string {
	names := make([]string, len(s.p.List))
	for i, q := range s.p.List {
		names[i] = q.Name
	}
	return sortedCopy(names)
}

func (s *paramSource) Info(name string) (weights.TensorInfo, bool) {
	q := s.p.Get(name)
	if q == nil {
		return weights.TensorInfo{}, false
	}
	return weights.TensorInfo{Name: name, Dtype: s.dtype, Shape: append([]int(nil), q.Shape...)}, true
}

func (s *paramSource) Read(name string, dst []float32) error {
	q := s.p.Get(name)
	if q == nil || len(dst) != len(q.Data) {
		return fmt.Errorf("model: no parameter %s of %d values", name, len(dst))
	}
	copy(dst, q.Data)
	return nil
}

func (s *paramSource) ReadRaw(name string, dst []byte) error {
	q := s.p.Get(name)
	if q == nil || len(dst) != len(q.Data)*s.dtype.Size() {
		return fmt.Errorf("model: no parameter %s of %d bytes", name, len(dst))
	}
	for i, v := range q.Data {
		if s.dtype == weights.F16 {
			binary.LittleEndian.PutUint16(dst[2*i:], FloatToHalf(v))
		} else {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	}
	return nil
}

func (s *paramSource) Close() error { return nil }

// FloatToHalf rounds a float32 to the nearest IEEE half (ties to even);
// values beyond the half range become infinities.
func FloatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case (b>>23)&0xff == 0xff: // inf, nan
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		// subnormal: shift the implicit-one mantissa into place, rounding
		m := mant | 0x800000
		shift := uint(14 - exp)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, up to infinity: still correct
	}
	return sign | uint16(h)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}
