package weights

import (
	"fmt"
	"strings"
)

// The prefixes of an original-layout (CompVis/LDM) Stable Diffusion checkpoint.
const (
	ldmUNet = "model.diffusion_model."
	ldmVAE  = "first_stage_model."
	ldmCLIP = "cond_stage_model.transformer."
)

func isLDM(raws map[string]rawTensor) bool {
	for n := range raws {
		if strings.HasPrefix(n, ldmUNet) || strings.HasPrefix(n, ldmVAE) || strings.HasPrefix(n, "cond_stage_model.") || strings.HasPrefix(n, "conditioner.") {
			return true
		}
	}
	return false
}

// refuseOtherVersions names SD-2.x and SDXL checkpoints, which this reader
// does not map.
func refuseOtherVersions(raws map[string]rawTensor) error {
	for n, r := range raws {
		switch {
		case strings.HasPrefix(n, "conditioner.") || strings.HasPrefix(n, ldmUNet+"label_emb."):
			return fmt.Errorf("an SDXL checkpoint (%s); only SD-1.x single files are supported", n)
		case strings.HasPrefix(n, "cond_stage_model.model."):
			return fmt.Errorf("an SD-2.x checkpoint (OpenCLIP text encoder, %s); only SD-1.x single files are supported", n)
		case strings.HasPrefix(n, ldmUNet) && strings.HasSuffix(n, ".attn2.to_k.weight") && len(r.shape) == 2:
			switch r.shape[1] {
			case 1024:
				return fmt.Errorf("an SD-2.x checkpoint (cross-attention dim 1024 in %s); only SD-1.x single files are supported", n)
			case 2048:
				return fmt.Errorf("an SDXL checkpoint (cross-attention dim 2048 in %s); only SD-1.x single files are supported", n)
			}
		case strings.HasPrefix(n, ldmUNet) && strings.HasSuffix(n, ".proj_in.weight") && len(r.shape) == 2:
			return fmt.Errorf("an SD-2.x checkpoint (linear proj_in in %s); only SD-1.x single files are supported", n)
		}
	}
	return nil
}

// ldmIgnored are tensors of original checkpoints that are not weights of the
// three networks (EMA copies, DDPM schedule buffers, training losses).
func ldmIgnored(n string) bool {
	return strings.HasPrefix(n, "model_ema.") || !strings.Contains(n, ".") || strings.HasPrefix(n, "first_stage_model.loss.") ||
		strings.HasPrefix(n, "lora_") || strings.HasPrefix(n, "control_model.")
}

// addLDM maps an original-layout checkpoint's three networks to diffusers
// names, inferring each config from the tensors.
func (m *Model) addLDM(sf *sharedFile, raws map[string]rawTensor, opt Options) error {
	if err := refuseOtherVersions(raws); err != nil {
		return fmt.Errorf("weights %s: %v", sf.path, err)
	}
	m.Files = append(m.Files, sf.path)
	ents := floatEntries(sf, raws, &m.Notes)
	parts := map[Component]map[string]*entry{UNet: {}, VAE: {}, TextEncoder: {}}
	var ignored []string
	for n, e := range ents {
		switch {
		case strings.HasPrefix(n, ldmUNet):
			parts[UNet][strings.TrimPrefix(n, ldmUNet)] = e
		case strings.HasPrefix(n, ldmVAE) && !ldmIgnored(n):
			parts[VAE][strings.TrimPrefix(n, ldmVAE)] = e
		case strings.HasPrefix(n, ldmCLIP):
			parts[TextEncoder][strings.TrimPrefix(strings.TrimPrefix(n, ldmCLIP), "text_model.")] = e
		default:
			ignored = append(ignored, n)
		}
	}
	if len(ignored) > 0 {
		m.Notes = append(m.Notes, fmt.Sprintf("%s: ignored %d tensor(s) outside the UNet, VAE and text encoder: %s", sf.path, len(ignored), firstFew(ignored)))
	}
	if len(parts[UNet]) == 0 {
		return fmt.Errorf("weights %s: no UNet tensors (model.diffusion_model.*)", sf.path)
	}
	for _, c := range Components {
		if len(parts[c]) == 0 {
			continue
		}
		if err := m.addLDMComponent(c, sf, parts[c], opt); err != nil {
			return fmt.Errorf("weights %s: %s: %v", sf.path, c, err)
		}
	}
	return nil
}

func (m *Model) addLDMComponent(c Component, sf *sharedFile, src map[string]*entry, opt Options) error {
	names := shapesOf(src)
	inferred, defaults, assumed, err := inferConfig(c, names, true, false)
	if err != nil {
		return fmt.Errorf("cannot infer the config: %v", err)
	}
	if c == UNet {
		if in := inferred["in_channels"].(int); in != 4 && in != 9 {
			return fmt.Errorf("%d input channels: only SD-1.x text-to-image (4) and inpainting (9) UNets are supported", in)
		}
	}
	cfgMap, cfg, err := buildConfig(nil, defaults, inferred, opt.Configs[c])
	if err != nil {
		return err
	}
	want, err := componentParams(c, cfg, false)
	if err != nil {
		return err
	}
	// Map by the config's name pairs; what the file has under a diffusers name
	// (its shape as stored) is then checked like any diffusers component.
	out := make(map[string]*entry, len(want))
	have := make(nameSet, len(src))
	used := make(map[string]bool, len(src))
	for _, p := range want {
		e, ok := src[p.ldm]
		if !ok {
			continue
		}
		used[p.ldm] = true
		stored := p.shape
		if p.ldmShape != nil {
			stored = p.ldmShape
		}
		if !sameShape(e.shape, stored) {
			have[p.name] = e.shape
			continue
		}
		ne := *e
		ne.shape = p.shape
		out[p.name] = &ne
		have[p.name] = p.shape
	}
	for n, e := range src {
		if !used[n] {
			have[n] = e.shape
		}
	}
	if err := checkTensors(have, want); err != nil {
		return err
	}
	if n := assumedNote(c, assumed, cfgMap, opt.Configs[c]); n != "" {
		m.Notes = append(m.Notes, n)
	}
	m.Components[c] = newTensorSet(out)
	m.Configs[c] = cfg
	return nil
}
