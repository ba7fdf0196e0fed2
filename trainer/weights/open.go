package weights

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Open opens a model folder (diffusers layout: unet/, vae/, text_encoder/),
// a component folder (…/unet: config.json and weights), or a single weight
// file (an original-layout checkpoint, or one component's diffusers file) as
// .safetensors, .ckpt, .bin or .pt. Pickles are read, never executed.
func Open(path string) (*Model, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, opt Options) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	m := &Model{Path: path, Components: map[Component]Source{}, Configs: map[Component][]byte{}}
	if st.IsDir() {
		err = m.openFolder(path, opt)
	} else {
		err = m.openFile(path, opt)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	if u, ok := m.Configs[UNet]; ok {
		var c struct {
			InChannels int `json:"in_channels"`
		}
		_ = json.Unmarshal(u, &c)
		m.Inpainting = c.InChannels == 9
	}
	return m, nil
}

// componentFiles are the weight file names of a diffusers component folder,
// in order of preference.
var componentFiles = map[Component][]string{
	UNet:        {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"},
	VAE:         {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"},
	TextEncoder: {"model.safetensors", "model.fp16.safetensors", "pytorch_model.bin", "pytorch_model.fp16.bin"},
}

func isDir(p string) bool  { st, err := os.Stat(p); return err == nil && st.IsDir() }
func isFile(p string) bool { st, err := os.Stat(p); return err == nil && !st.IsDir() }

func (m *Model) openFolder(dir string, opt Options) error {
	var found []Component
	for _, c := range Components {
		if isDir(filepath.Join(dir, string(c))) {
			found = append(found, c)
		}
	}
	if len(found) > 0 {
		m.Layout = "diffusers"
		for _, c := range found {
			if err := m.openComponentFolder(filepath.Join(dir, string(c)), c, opt); err != nil {
				return err
			}
		}
		if m.Pseudo3D {
			m.Layout = "pseudo3d"
		}
		return nil
	}
	cfgPath := filepath.Join(dir, "config.json")
	if !isFile(cfgPath) {
		return fmt.Errorf("weights %s: not a model folder (no unet/, vae/ or text_encoder/) nor a component folder (no config.json)", dir)
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	c, ok := componentOfConfig(b)
	if !ok {
		c, ok = Component(filepath.Base(dir)), componentFiles[Component(filepath.Base(dir))] != nil
	}
	if !ok {
		return fmt.Errorf("weights %s: config.json names no UNet2DConditionModel, AutoencoderKL or CLIPTextModel", cfgPath)
	}
	m.Layout = "diffusers"
	if err := m.openComponentFolder(dir, c, opt); err != nil {
		return err
	}
	if m.Pseudo3D {
		m.Layout = "pseudo3d"
	}
	return nil
}

// componentOfConfig recognises a component by its config's class.
func componentOfConfig(b []byte) (Component, bool) {
	var c struct {
		Class         string   `json:"_class_name"`
		Architectures []string `json:"architectures"`
		ModelType     string   `json:"model_type"`
	}
	if json.Unmarshal(b, &c) != nil {
		return "", false
	}
	switch {
	case c.Class == "UNet2DConditionModel":
		return UNet, true
	case c.Class == "AutoencoderKL":
		return VAE, true
	case c.ModelType == "clip_text_model" || len(c.Architectures) > 0 && c.Architectures[0] == "CLIPTextModel":
		return TextEncoder, true
	}
	return "", false
}

func (m *Model) openComponentFolder(dir string, c Component, opt Options) error {
	cfgPath := filepath.Join(dir, "config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return fmt.Errorf("weights %s: %s needs its config.json: %w", dir, c, err)
	}
	var file string
	for _, name := range componentFiles[c] {
		if p := filepath.Join(dir, name); isFile(p) {
			file = p
			break
		}
	}
	if file == "" {
		if idx, _ := filepath.Glob(filepath.Join(dir, "*.index.json")); len(idx) > 0 {
			return fmt.Errorf("weights %s: sharded weights (%s) are not supported; convert them to one file", dir, filepath.Base(idx[0]))
		}
		return fmt.Errorf("weights %s: no weight file for %s (looked for %s)", dir, c, strings.Join(componentFiles[c], ", "))
	}
	sf, raws, err := readWeightFile(file)
	if err != nil {
		return err
	}
	defer sf.release()
	return m.addDiffusersComponent(c, sf, raws, cfg, opt)
}

// openFile opens a single weight file: an original-layout checkpoint, or
// one component in diffusers names.
func (m *Model) openFile(path string, opt Options) error {
	sf, raws, err := readWeightFile(path)
	if err != nil {
		return err
	}
	defer sf.release()
	if isLDM(raws) {
		m.Layout = "single-file"
		return m.addLDM(sf, raws, opt)
	}
	names := make(nameSet, len(raws))
	for n, r := range raws {
		names[n] = r.shape
	}
	c, ok := componentOfNames(names)
	if !ok {
		return fmt.Errorf("weights %s: neither an original-layout checkpoint (model.diffusion_model.*) nor a UNet, VAE or text encoder in diffusers names (first tensors: %s)", path, firstFew(keys(names)))
	}
	m.Layout = "component-file"
	var cfg []byte
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "config.json")); err == nil {
		if cc, ok := componentOfConfig(b); ok && cc == c {
			cfg = b
		}
	}
	return m.addDiffusersComponent(c, sf, raws, cfg, opt)
}

func keys(s nameSet) []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	return out
}

func componentOfNames(s nameSet) (Component, bool) {
	switch {
	case s.has("time_embedding.linear_1.weight"):
		return UNet, true
	case s.has("encoder.conv_in.weight") && s.has("decoder.conv_in.weight"):
		return VAE, true
	case s.has("embeddings.token_embedding.weight") || s.has("text_model.embeddings.token_embedding.weight"):
		return TextEncoder, true
	}
	return "", false
}

// addDiffusersComponent checks a component's tensors (diffusers names)
// against its config (stored, or inferred when cfg is nil) and adds it.
func (m *Model) addDiffusersComponent(c Component, sf *sharedFile, raws map[string]rawTensor, stored []byte, opt Options) error {
	m.Files = append(m.Files, sf.path)
	ents := floatEntries(sf, raws, &m.Notes)
	switch c {
	case TextEncoder:
		ents = renamePrefix(ents, "text_model.")
	case VAE:
		ents = renameLegacyVAE(ents)
	}
	have := shapesOf(ents)
	pseudo3D := c == UNet && isPseudo3D(have)
	var inferred, defaults map[string]any
	var assumed []string
	if stored == nil {
		var err error
		if inferred, defaults, assumed, err = inferConfig(c, have, false, pseudo3D); err != nil {
			return fmt.Errorf("weights %s: %s: cannot infer the config: %v", sf.path, c, err)
		}
	}
	cfgMap, cfg, err := buildConfig(stored, defaults, inferred, opt.Configs[c])
	if err != nil {
		return fmt.Errorf("weights %s: %s: %v", sf.path, c, err)
	}
	want, err := componentParams(c, cfg, pseudo3D)
	if err != nil {
		return fmt.Errorf("weights %s: %v", sf.path, err)
	}
	if err := checkTensors(have, want); err != nil {
		return fmt.Errorf("weights %s: %s: %v", sf.path, c, err)
	}
	if stored == nil {
		if n := assumedNote(c, assumed, cfgMap, opt.Configs[c]); n != "" {
			m.Notes = append(m.Notes, n)
		}
	}
	m.Pseudo3D = m.Pseudo3D || pseudo3D
	m.Components[c] = newTensorSet(ents)
	m.Configs[c] = cfg
	return nil
}

// renamePrefix drops prefix from names that have it (transformers 4's "text_model.").
func renamePrefix(ents map[string]*entry, prefix string) map[string]*entry {
	out := make(map[string]*entry, len(ents))
	for n, e := range ents {
		out[strings.TrimPrefix(n, prefix)] = e
	}
	return out
}

// renameLegacyVAE renames diffusers' pre-0.14 VAE attention tensors
// (query/key/value/proj_attn) to to_q/to_k/to_v/to_out.0.
func renameLegacyVAE(ents map[string]*entry) map[string]*entry {
	out := make(map[string]*entry, len(ents))
	for n, e := range ents {
		if i := strings.Index(n, ".attentions.0."); i >= 0 {
			rest := n[i+len(".attentions.0."):]
			if mod, tail, ok := strings.Cut(rest, "."); ok {
				if nn, ok := vaeLegacyNames[mod]; ok {
					n = n[:i] + ".attentions.0." + nn + "." + tail
				}
			}
		}
		out[n] = e
	}
	return out
}

// readWeightFile reads the tensor index of a safetensors or PyTorch file,
// recognised by content, not by name.
func readWeightFile(path string) (*sharedFile, map[string]rawTensor, error) {
	sf, err := openShared(path)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %w", err)
	}
	var head [8]byte
	n, _ := sf.f.ReadAt(head[:], 0)
	var raws map[string]rawTensor
	switch {
	case n >= 4 && bytes.Equal(head[:4], []byte("PK\x03\x04")):
		raws, err = readTorchZip(sf)
	case n >= 2 && head[0] == 0x80 && head[1] <= 5:
		err = fmt.Errorf("a legacy (pre-1.6) PyTorch file; load and re-save it with a recent PyTorch, or convert it to safetensors")
	default:
		raws, _, err = readSafetensorsHeader(sf.f, sf.size)
	}
	if err != nil {
		sf.release()
		return nil, nil, fmt.Errorf("weights %s: %w", path, err)
	}
	return sf, raws, nil
}

// inferConfig infers a component's config fields from its tensors (original
// LDM names when ldm), with the defaults for what tensors cannot tell and
// the names of those assumed fields.
func inferConfig(c Component, names nameSet, ldm, pseudo3D bool) (inferred, defaults map[string]any, assumed []string, err error) {
	switch c {
	case UNet:
		if ldm {
			inferred, err = unetFromLDM(names)
		} else {
			inferred, err = unetFromDiffusers(names, pseudo3D)
		}
		return inferred, unetDefaults(), unetAssumed, err
	case VAE:
		if ldm {
			inferred, err = vaeFromLDM(names)
		} else {
			inferred, err = vaeFromDiffusers(names)
		}
		return inferred, vaeDefaults(), vaeAssumed, err
	}
	inferred, err = clipFromNames(names)
	return inferred, clipDefaults(), clipAssumed, err
}
