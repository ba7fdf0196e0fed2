package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/timelapse-ml/pipeline/pipeline"
	"github.com/timelapse-ml/pipeline/trainer/weights"
)

const infoUsage = "model info PATH [--config COMPONENT=FILE | --config FOLDER]... [--json]"

// modelInfo is what `pipeline model info` reports.
type modelInfo struct {
	Path         string                   `json:"path"`
	Layout       string                   `json:"layout"`
	Architecture string                   `json:"architecture"`
	Inpainting   bool                     `json:"inpainting"`
	Pseudo3D     bool                     `json:"pseudo3d"`
	Files        []string                 `json:"files"`
	Components   map[string]componentInfo `json:"components"`
	Notes        []string                 `json:"notes,omitempty"`
}

type componentInfo struct {
	Class      string           `json:"class"`
	Tensors    int              `json:"tensors"`
	Parameters int64            `json:"parameters"`
	ByDtype    map[string]int64 `json:"parameters_by_dtype"`
	Config     json.RawMessage  `json:"config"`
}

var componentClass = map[weights.Component]string{
	weights.UNet: "UNet2DConditionModel", weights.VAE: "AutoencoderKL", weights.TextEncoder: "CLIPTextModel",
}

// cmdModelInfo prints what a weight path holds: layout, architecture and
// config, parameter counts by dtype, inpainting, pseudo-3D, components.
func cmdModelInfo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("model info", flag.ContinueOnError)
	cfg := configFlags{}
	fs.Var(cfg, "config", "override config fields: COMPONENT=FILE.json, or a model FOLDER's configs")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &pipeline.UsageError{Msg: "usage: pipeline " + infoUsage}
	}
	m, err := openModel(pos[0], cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	info := describeModel(m)
	if *asJSON {
		b, _ := json.MarshalIndent(info, "", "  ")
		_, err := fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	return printInfo(stdout, info)
}

func describeModel(m *weights.Model) modelInfo {
	info := modelInfo{Path: m.Path, Layout: m.Layout, Inpainting: m.Inpainting, Pseudo3D: m.Pseudo3D,
		Files: m.Files, Components: map[string]componentInfo{}, Notes: m.Notes, Architecture: architecture(m)}
	for _, c := range weights.Components {
		s, ok := m.Components[c]
		if !ok {
			continue
		}
		ci := componentInfo{Class: componentClass[c], Tensors: len(s.Names()), ByDtype: map[string]int64{}, Config: m.Configs[c]}
		for d, n := range m.ParamCounts(c) {
			ci.ByDtype[string(d)] = n
			ci.Parameters += n
		}
		info.Components[string(c)] = ci
	}
	return info
}

// architecture names the model family from the UNet's config.
func architecture(m *weights.Model) string {
	var c struct {
		In    int   `json:"in_channels"`
		Block []int `json:"block_out_channels"`
		Ctx   int   `json:"cross_attention_dim"`
	}
	b, ok := m.Configs[weights.UNet]
	if !ok {
		return "no UNet (" + strings.Join(componentNames(m), ", ") + ")"
	}
	_ = json.Unmarshal(b, &c)
	sdWidths := fmt.Sprint(c.Block) == "[320 640 1280 1280]"
	name := "SD-1.x-architecture UNet (custom widths)"
	switch {
	case sdWidths && c.Ctx == 768:
		name = "Stable Diffusion 1.x UNet"
	case sdWidths && c.Ctx == 1024:
		name = "Stable Diffusion 2.x UNet"
	case c.Ctx == 1024:
		name = "SD-2.x-architecture UNet (custom widths)"
	}
	if c.In == 9 {
		name += ", inpainting (9 input channels)"
	}
	if m.Pseudo3D {
		name += ", inflated to the recipe's pseudo-3D video layout"
	}
	return name
}

func componentNames(m *weights.Model) []string {
	var out []string
	for _, c := range weights.Components {
		if _, ok := m.Components[c]; ok {
			out = append(out, string(c))
		}
	}
	return out
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printInfo(w io.Writer, info modelInfo) error {
	var b strings.Builder
	fmt.Fprintf(&b, "path:          %s\n", info.Path)
	fmt.Fprintf(&b, "layout:        %s\n", info.Layout)
	fmt.Fprintf(&b, "architecture:  %s\n", info.Architecture)
	fmt.Fprintf(&b, "inpainting:    %s\n", yesNo(info.Inpainting))
	fmt.Fprintf(&b, "pseudo-3D:     %s\n", yesNo(info.Pseudo3D))
	fmt.Fprintf(&b, "files:         %s\n", strings.Join(info.Files, ", "))
	for _, c := range weights.Components {
		ci, ok := info.Components[string(c)]
		if !ok {
			fmt.Fprintf(&b, "%-14s absent\n", string(c)+":")
			continue
		}
		var dts []string
		for d := range ci.ByDtype {
			dts = append(dts, d)
		}
		sort.Strings(dts)
		var parts []string
		for _, d := range dts {
			parts = append(parts, fmt.Sprintf("%s %s", d, commas(ci.ByDtype[d])))
		}
		fmt.Fprintf(&b, "%-14s %s, %d tensors, %s parameters (%s)\n", string(c)+":", ci.Class, ci.Tensors, commas(ci.Parameters), strings.Join(parts, ", "))
		fmt.Fprintf(&b, "               %s\n", configSummary(c, ci.Config))
	}
	for _, n := range info.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// configSummaryKeys are the config fields info prints per component.
var configSummaryKeys = map[weights.Component][]string{
	weights.UNet: {"in_channels", "out_channels", "block_out_channels", "layers_per_block", "down_block_types", "up_block_types",
		"cross_attention_dim", "attention_head_dim", "norm_num_groups", "use_linear_projection"},
	weights.VAE:         {"in_channels", "latent_channels", "block_out_channels", "layers_per_block", "norm_num_groups", "scaling_factor"},
	weights.TextEncoder: {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings", "hidden_act"},
}

func configSummary(c weights.Component, cfg []byte) string {
	var m map[string]any
	_ = json.Unmarshal(cfg, &m)
	var parts []string
	for _, k := range configSummaryKeys[c] {
		if v, ok := m[k]; ok {
			s := fmt.Sprint(v)
			if l, ok := v.([]any); ok {
				s = compactList(l)
			}
			parts = append(parts, k+" "+s)
		}
	}
	return strings.Join(parts, ", ")
}

// compactList prints a list, runs of equal items as "X x3".
func compactList(l []any) string {
	var parts []string
	for i := 0; i < len(l); {
		j := i
		for j < len(l) && fmt.Sprint(l[j]) == fmt.Sprint(l[i]) {
			j++
		}
		if s := fmt.Sprint(l[i]); j-i > 1 {
			parts = append(parts, fmt.Sprintf("%s x%d", s, j-i))
		} else {
			parts = append(parts, s)
		}
		i = j
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
