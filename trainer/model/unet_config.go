package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// UNetConfig is a diffusers UNet2DConditionModel config.json: the fields
// that shape Stable Diffusion 1.x/2.x UNets (and their inpainting
// variants). Fields a file leaves out take diffusers' defaults.
type UNetConfig struct {
	ClassName           string   `json:"_class_name,omitempty"`
	SampleSize          int      `json:"sample_size"`
	InChannels          int      `json:"in_channels"`
	OutChannels         int      `json:"out_channels"`
	FlipSinToCos        bool     `json:"flip_sin_to_cos"`
	FreqShift           float64  `json:"freq_shift"`
	DownBlockTypes      []string `json:"down_block_types"`
	MidBlockType        string   `json:"mid_block_type"`
	UpBlockTypes        []string `json:"up_block_types"`
	BlockOutChannels    []int    `json:"block_out_channels"`
	LayersPerBlock      int      `json:"layers_per_block"`
	DownsamplePadding   int      `json:"downsample_padding"`
	MidBlockScaleFactor float64  `json:"mid_block_scale_factor"`
	ActFn               string   `json:"act_fn"`
	NormNumGroups       int      `json:"norm_num_groups"`
	NormEps             float64  `json:"norm_eps"`
	CrossAttentionDim   int      `json:"cross_attention_dim"`
	// AttentionHeadDim is, in SD configs, the number of heads (per block
	// when a list); NumAttentionHeads overrides it when set.
	AttentionHeadDim          IntList `json:"attention_head_dim"`
	NumAttentionHeads         IntList `json:"num_attention_heads,omitempty"`
	TransformerLayersPerBlock int     `json:"transformer_layers_per_block"`
	UseLinearProjection       bool    `json:"use_linear_projection"`
	TimeEmbeddingDim          int     `json:"time_embedding_dim,omitempty"`
	ConvInKernel              int     `json:"conv_in_kernel"`
	ConvOutKernel             int     `json:"conv_out_kernel"`
	ResnetOutScaleFactor      float64 `json:"resnet_out_scale_factor"`

	// unsupported features, refused when set
	unsupported []string
}

// IntList is an int or a list of ints in a config file.
type IntList []int

// UnmarshalJSON accepts 8, [5, 10, 20, 20] and null.
func (l *IntList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = nil
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*l = IntList{n}
		return nil
	}
	var s []int
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want an int or a list of ints, got %s", b)
	}
	*l = s
	return nil
}

// MarshalJSON writes a one-element list as an int.
func (l IntList) MarshalJSON() ([]byte, error) {
	if len(l) == 1 {
		return json.Marshal(l[0])
	}
	return json.Marshal([]int(l))
}

// SD15UNet is the Stable Diffusion 1.5 UNet (in_channels 9 for the
// inpainting model).
func SD15UNet(inChannels int) UNetConfig {
	c := defaultUNetConfig()
	c.SampleSize = 64
	c.InChannels = inChannels
	c.CrossAttentionDim = 768
	return c
}

// defaultUNetConfig holds UNet2DConditionModel's constructor defaults
// (SD-1.x shaped, except cross_attention_dim 1280).
func defaultUNetConfig() UNetConfig {
	return UNetConfig{
		InChannels: 4, OutChannels: 4, FlipSinToCos: true,
		DownBlockTypes:   []string{crossDown, crossDown, crossDown, plainDown},
		MidBlockType:     midCross,
		UpBlockTypes:     []string{plainUp, crossUp, crossUp, crossUp},
		BlockOutChannels: []int{320, 640, 1280, 1280}, LayersPerBlock: 2,
		DownsamplePadding: 1, MidBlockScaleFactor: 1, ActFn: "silu",
		NormNumGroups: 32, NormEps: 1e-5, CrossAttentionDim: 1280,
		AttentionHeadDim: IntList{8}, TransformerLayersPerBlock: 1,
		ConvInKernel: 3, ConvOutKernel: 3, ResnetOutScaleFactor: 1,
	}
}

const (
	crossDown = "CrossAttnDownBlock2D"
	plainDown = "DownBlock2D"
	crossUp   = "CrossAttnUpBlock2D"
	plainUp   = "UpBlock2D"
	midCross  = "UNetMidBlock2DCrossAttn"
)

// ParseUNetConfig reads a diffusers UNet config.json. Features this UNet
// does not implement (SDXL's added embeddings, class embeddings, other
// block types, ...) are an error naming the field.
func ParseUNetConfig(data []byte) (UNetConfig, error) {
	c := defaultUNetConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return UNetConfig{}, fmt.Errorf("model: unet config: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return UNetConfig{}, fmt.Errorf("model: unet config: %w", err)
	}
	// fields that must keep their default (null, false or the named value)
	defaults := map[string]string{
		"addition_embed_type": "null", "class_embed_type": "null", "num_class_embeds": "null",
		"encoder_hid_dim": "null", "encoder_hid_dim_type": "null", "time_cond_proj_dim": "null",
		"time_embedding_act_fn": "null", "timestep_post_act": "null", "cross_attention_norm": "null",
		"projection_class_embeddings_input_dim": "null", "reverse_transformer_layers_per_block": "null",
		"center_input_sample": "false", "dual_cross_attention": "false", "only_cross_attention": "false",
		"class_embeddings_concat": "false", "resnet_skip_time_act": "false",
		"mid_block_only_cross_attention": "null",
		"time_embedding_type":            `"positional"`, "resnet_time_scale_shift": `"default"`, "attention_type": `"default"`,
	}
	for k, want := range defaults {
		v, ok := raw[k]
		if !ok {
			continue
		}
		var got, def any
		_ = json.Unmarshal(v, &got)
		_ = json.Unmarshal([]byte(want), &def)
		if got != def && !(k == "mid_block_only_cross_attention" && got == false) {
			c.unsupported = append(c.unsupported, fmt.Sprintf("%s = %s (supported: %s)", k, v, want))
		}
	}
	slices.Sort(c.unsupported)
	return c, c.Validate()
}

// Heads returns the attention head count of each down block (diffusers'
// num_attention_heads, falling back to attention_head_dim).
func (c UNetConfig) Heads() []int {
	h := c.NumAttentionHeads
	if len(h) == 0 {
		h = c.AttentionHeadDim
	}
	if len(h) == 1 {
		out := make([]int, len(c.DownBlockTypes))
		for i := range out {
			out[i] = h[0]
		}
		return out
	}
	return append([]int(nil), h...)
}

// TimeEmbedDim is the width of the time embedding MLP.
func (c UNetConfig) TimeEmbedDim() int {
	if c.TimeEmbeddingDim > 0 {
		return c.TimeEmbeddingDim
	}
	return 4 * c.BlockOutChannels[0]
}

// Validate reports every inconsistency or unsupported feature.
func (c UNetConfig) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("model: unet config: "+format, a...)) }
	for _, u := range c.unsupported {
		bad("unsupported %s", u)
	}
	if c.ClassName != "" && c.ClassName != "UNet2DConditionModel" {
		bad("_class_name %q, want UNet2DConditionModel", c.ClassName)
	}
	if c.InChannels <= 0 || c.OutChannels <= 0 {
		bad("in_channels %d and out_channels %d must be > 0", c.InChannels, c.OutChannels)
	}
	n := len(c.BlockOutChannels)
	if n == 0 || len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		bad("block_out_channels (%d), down_block_types (%d) and up_block_types (%d) must have one entry per level", n, len(c.DownBlockTypes), len(c.UpBlockTypes))
	}
	for i, t := range c.DownBlockTypes {
		if t != crossDown && t != plainDown {
			bad("down_block_types[%d] %q (supported: %s, %s)", i, t, crossDown, plainDown)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != crossUp && t != plainUp {
			bad("up_block_types[%d] %q (supported: %s, %s)", i, t, crossUp, plainUp)
		}
	}
	if c.MidBlockType != midCross {
		bad("mid_block_type %q (supported: %s)", c.MidBlockType, midCross)
	}
	if c.NormNumGroups <= 0 {
		bad("norm_num_groups %d must be > 0", c.NormNumGroups)
	}
	heads := c.Heads()
	if len(heads) != len(c.DownBlockTypes) {
		bad("attention heads %v: want one per block (%d)", heads, len(c.DownBlockTypes))
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 || (c.NormNumGroups > 0 && ch%c.NormNumGroups != 0) {
			bad("block_out_channels[%d] = %d must be a positive multiple of norm_num_groups %d", i, ch, c.NormNumGroups)
		}
		if i < len(heads) && (heads[i] <= 0 || ch%heads[i] != 0) {
			bad("block %d: %d channels do not split into %d heads", i, ch, heads[i])
		}
	}
	if c.LayersPerBlock <= 0 || c.TransformerLayersPerBlock <= 0 {
		bad("layers_per_block %d and transformer_layers_per_block %d must be > 0", c.LayersPerBlock, c.TransformerLayersPerBlock)
	}
	if c.CrossAttentionDim <= 0 {
		bad("cross_attention_dim %d must be > 0", c.CrossAttentionDim)
	}
	if !(c.NormEps > 0) {
		bad("norm_eps %g must be > 0", c.NormEps)
	}
	if c.ActFn != "silu" {
		bad("act_fn %q (supported: silu)", c.ActFn)
	}
	if c.ConvInKernel != 3 || c.ConvOutKernel != 3 || c.DownsamplePadding != 1 {
		bad("conv_in_kernel %d, conv_out_kernel %d, downsample_padding %d (supported: 3, 3, 1)", c.ConvInKernel, c.ConvOutKernel, c.DownsamplePadding)
	}
	if c.MidBlockScaleFactor != 1 || c.ResnetOutScaleFactor != 1 {
		bad("mid_block_scale_factor %g, resnet_out_scale_factor %g (supported: 1)", c.MidBlockScaleFactor, c.ResnetOutScaleFactor)
	}
	if c.TimeEmbeddingDim < 0 {
		bad("time_embedding_dim %d must be > 0", c.TimeEmbeddingDim)
	}
	return errors.Join(errs...)
}
