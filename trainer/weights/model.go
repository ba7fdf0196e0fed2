package weights

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Model is a Stable Diffusion model's weights as found at a path.
type Model struct {
	Path       string
	Layout     string // "diffusers", "single-file", "pseudo3d", "component-file"
	Components map[Component]Source
	Configs    map[Component][]byte // diffusers-style config.json per component (synthesised for single files)
	Inpainting bool                 // the UNet takes 9 input channels (latent, mask, masked-image latent)
	Pseudo3D   bool                 // the UNet is in the recipe's inflated video layout
	Files      []string             // the weight files read
	Notes      []string             // what was assumed or left out (config fields not stored in the file, ignored tensors)
}

// Options adjust Open.
type Options struct {
	// Configs overrides config fields per component: each value is a JSON
	// object whose fields replace those read or inferred (for a single file,
	// e.g. attention_head_dim and norm_num_groups, which tensors cannot tell).
	Configs map[Component][]byte
}

// Close closes every component's source.
func (m *Model) Close() error {
	var errs []error
	for _, s := range m.Components {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// ParamCounts returns the element counts of every component's tensors, by dtype.
func (m *Model) ParamCounts(c Component) map[Dtype]int64 {
	out := map[Dtype]int64{}
	s, ok := m.Components[c]
	if !ok {
		return out
	}
	for _, n := range s.Names() {
		ti, _ := s.Info(n)
		out[ti.Dtype] += int64(ti.Numel())
	}
	return out
}

// buildConfig returns the config JSON (stored bytes, or defaults+inferred),
// with overrides applied, as a map and as bytes.
func buildConfig(stored []byte, defaults, inferred map[string]any, override []byte) (map[string]any, []byte, error) {
	cfg := map[string]any{}
	if stored != nil {
		if err := json.Unmarshal(stored, &cfg); err != nil {
			return nil, nil, fmt.Errorf("config.json: %v", err)
		}
		if cfg == nil {
			return nil, nil, fmt.Errorf("config.json: not a JSON object")
		}
	} else {
		for k, v := range defaults {
			cfg[k] = v
		}
		for k, v := range inferred {
			cfg[k] = v
		}
	}
	if override != nil {
		var ov map[string]any
		if err := json.Unmarshal(override, &ov); err != nil {
			return nil, nil, fmt.Errorf("config override: %v", err)
		}
		for k, v := range ov {
			cfg[k] = v
		}
	}
	if stored != nil && override == nil {
		return cfg, stored, nil
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return cfg, append(b, '\n'), nil
}

// componentParams parses a component's config and lists the tensors it implies.
func componentParams(c Component, cfg []byte, pseudo3D bool) ([]param, error) {
	switch c {
	case UNet:
		uc, err := parseUNetConfig(cfg)
		if err != nil {
			return nil, err
		}
		return unetParams(uc, pseudo3D), nil
	case VAE:
		vc, err := parseVAEConfig(cfg)
		if err != nil {
			return nil, err
		}
		return vaeParams(vc), nil
	case TextEncoder:
		cc, err := parseCLIPConfig(cfg)
		if err != nil {
			return nil, err
		}
		return clipParams(cc), nil
	}
	return nil, fmt.Errorf("unknown component %q", c)
}

func assumedNote(c Component, fields []string, cfg map[string]any, override []byte) string {
	var ov map[string]any
	_ = json.Unmarshal(override, &ov)
	var parts []string
	for _, f := range fields {
		key, _, _ := strings.Cut(f, " ")
		if _, ok := ov[key]; ok {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", f, cfg[key]))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: not stored in the file, assumed (SD-1.x): %s", c, strings.Join(parts, ", "))
}

// floatEntries turns raw tensors into entries, dropping non-float ones
// (position_ids and other integer buffers) with a note.
func floatEntries(file *sharedFile, raws map[string]rawTensor, notes *[]string) map[string]*entry {
	out := make(map[string]*entry, len(raws))
	var dropped []string
	for n, r := range raws {
		d := Dtype(r.dtype)
		if d.Size() == 0 {
			dropped = append(dropped, n+" ("+r.dtype+")")
			continue
		}
		out[n] = &entry{file: file, off: r.off, dtype: d, shape: r.shape, orig: n}
	}
	if len(dropped) > 0 {
		*notes = append(*notes, fmt.Sprintf("%s: ignored %d non-float tensor(s): %s", file.path, len(dropped), firstFew(dropped)))
	}
	return out
}

func shapesOf(m map[string]*entry) nameSet {
	s := make(nameSet, len(m))
	for n, e := range m {
		s[n] = e.shape
	}
	return s
}

func sortedComponents(m map[Component]Source) []Component {
	var cs []Component
	for _, c := range Components {
		if _, ok := m[c]; ok {
			cs = append(cs, c)
		}
	}
	return cs
}
