package weights

import (
	"encoding/json"
	"fmt"
	"strings"
)

// unetConfig holds the UNet2DConditionModel config fields that decide its tensors.
type unetConfig struct {
	InChannels                int      `json:"in_channels"`
	OutChannels               int      `json:"out_channels"`
	BlockOutChannels          []int    `json:"block_out_channels"`
	LayersPerBlock            int      `json:"layers_per_block"`
	DownBlockTypes            []string `json:"down_block_types"`
	UpBlockTypes              []string `json:"up_block_types"`
	MidBlockType              *string  `json:"mid_block_type"`
	CrossAttentionDim         int      `json:"cross_attention_dim"`
	UseLinearProjection       bool     `json:"use_linear_projection"`
	TransformerLayersPerBlock any      `json:"transformer_layers_per_block"`
	AdditionEmbedType         *string  `json:"addition_embed_type"`
	ClassEmbedType            *string  `json:"class_embed_type"`
	TimeCondProjDim           *int     `json:"time_cond_proj_dim"`
	ConvInKernel              *int     `json:"conv_in_kernel"`
	ConvOutKernel             *int     `json:"conv_out_kernel"`
	EncoderHidDim             *int     `json:"encoder_hid_dim"`
}

func parseUNetConfig(b []byte) (*unetConfig, error) {
	var c unetConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("unet config: %v", err)
	}
	return &c, c.check()
}

// transformerLayers returns transformer_layers_per_block (an int; 1 when unset).
func (c *unetConfig) transformerLayers() (int, error) {
	switch v := c.TransformerLayersPerBlock.(type) {
	case nil:
		return 1, nil
	case float64:
		if v >= 1 && v == float64(int(v)) && v <= 64 {
			return int(v), nil
		}
	}
	return 0, fmt.Errorf("unet config: transformer_layers_per_block %v not supported (an integer, as in SD-1.x/2.x)", c.TransformerLayersPerBlock)
}

func (c *unetConfig) check() error {
	n := len(c.BlockOutChannels)
	switch {
	case n == 0:
		return fmt.Errorf("unet config: block_out_channels is empty")
	case len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n:
		return fmt.Errorf("unet config: %d block_out_channels but %d down and %d up block types", n, len(c.DownBlockTypes), len(c.UpBlockTypes))
	case c.LayersPerBlock < 1 || c.LayersPerBlock > 64:
		return fmt.Errorf("unet config: layers_per_block %d", c.LayersPerBlock)
	case c.InChannels < 1 || c.OutChannels < 1:
		return fmt.Errorf("unet config: in_channels %d, out_channels %d", c.InChannels, c.OutChannels)
	case c.AdditionEmbedType != nil:
		return fmt.Errorf("unet config: addition_embed_type %q (SDXL-style added conditioning) not supported", *c.AdditionEmbedType)
	case c.ClassEmbedType != nil:
		return fmt.Errorf("unet config: class_embed_type %q not supported", *c.ClassEmbedType)
	case c.TimeCondProjDim != nil || c.EncoderHidDim != nil:
		return fmt.Errorf("unet config: time_cond_proj_dim / encoder_hid_dim not supported")
	case c.MidBlockType != nil && *c.MidBlockType != "UNetMidBlock2DCrossAttn":
		return fmt.Errorf("unet config: mid_block_type %q not supported (want UNetMidBlock2DCrossAttn)", *c.MidBlockType)
	case c.ConvInKernel != nil && *c.ConvInKernel != 3, c.ConvOutKernel != nil && *c.ConvOutKernel != 3:
		return fmt.Errorf("unet config: conv_in_kernel/conv_out_kernel must be 3")
	}
	for i, ch := range c.BlockOutChannels {
		if ch < 1 || ch > 1<<16 {
			return fmt.Errorf("unet config: block_out_channels[%d] = %d", i, ch)
		}
	}
	for _, t := range c.DownBlockTypes {
		if t != "CrossAttnDownBlock2D" && t != "DownBlock2D" {
			return fmt.Errorf("unet config: down block type %q not supported (CrossAttnDownBlock2D, DownBlock2D)", t)
		}
	}
	for _, t := range c.UpBlockTypes {
		if t != "CrossAttnUpBlock2D" && t != "UpBlock2D" {
			return fmt.Errorf("unet config: up block type %q not supported (CrossAttnUpBlock2D, UpBlock2D)", t)
		}
	}
	_, err := c.transformerLayers()
	return err
}

// unetParams lists the tensors of a UNet2DConditionModel with config c,
// under diffusers' names and the LDM single-file names; pseudo3D gives the
// recipe's inflated layout instead (no LDM names).
func unetParams(c *unetConfig, pseudo3D bool) []param {
	var l paramList
	T, _ := c.transformerLayers()
	C := c.BlockOutChannels
	n := len(C)
	L := c.LayersPerBlock
	temb := 4 * C[0]
	conv := func(name, ldm string, out, in, k int) {
		if !pseudo3D {
			l.conv(name, ldm, out, in, k)
			return
		}
		l.conv(name+".spatial_conv", "", out, in, k)
		l.add(name+".temporal_conv.weight", "", out, out, 3)
		l.add(name+".temporal_conv.bias", "", out)
	}
	resnet := func(name, ldm string, in, out int) {
		l.norm(name+".norm1", ldm+".in_layers.0", in)
		conv(name+".conv1", ldm+".in_layers.2", out, in, 3)
		l.linear(name+".time_emb_proj", ldm+".emb_layers.1", out, temb, true)
		l.norm(name+".norm2", ldm+".out_layers.0", out)
		conv(name+".conv2", ldm+".out_layers.3", out, out, 3)
		if in != out {
			conv(name+".conv_shortcut", ldm+".skip_connection", out, in, 1)
		}
	}
	proj := func(name, ldm string, ch int) {
		if c.UseLinearProjection {
			l.linear(name, ldm, ch, ch, true)
			return
		}
		l.conv(name, ldm, ch, ch, 1)
	}
	transformer := func(name, ldm string, ch int) {
		l.norm(name+".norm", ldm+".norm", ch)
		proj(name+".proj_in", ldm+".proj_in", ch)
		for t := 0; t < T; t++ {
			b := fmt.Sprintf(".transformer_blocks.%d", t)
			p, q := name+b, ldm+b
			l.norm(p+".norm1", q+".norm1", ch)
			for _, k := range []string{"to_q", "to_k", "to_v"} {
				l.linear(p+".attn1."+k, q+".attn1."+k, ch, ch, false)
			}
			l.linear(p+".attn1.to_out.0", q+".attn1.to_out.0", ch, ch, true)
			l.norm(p+".norm2", q+".norm2", ch)
			l.linear(p+".attn2.to_q", q+".attn2.to_q", ch, ch, false)
			l.linear(p+".attn2.to_k", q+".attn2.to_k", ch, c.CrossAttentionDim, false)
			l.linear(p+".attn2.to_v", q+".attn2.to_v", ch, c.CrossAttentionDim, false)
			l.linear(p+".attn2.to_out.0", q+".attn2.to_out.0", ch, ch, true)
			if pseudo3D { // 8 heads of ch/8 channels
				inner := 8 * (ch / 8)
				l.norm(p+".norm_temporal", "", ch)
				for _, k := range []string{"to_q", "to_k", "to_v"} {
					l.linear(p+".attn_temporal."+k, "", inner, ch, false)
				}
				l.linear(p+".attn_temporal.to_out.0", "", ch, inner, true)
			}
			l.norm(p+".norm3", q+".norm3", ch)
			l.linear(p+".ff.net.0.proj", q+".ff.net.0.proj", 8*ch, ch, true)
			l.linear(p+".ff.net.2", q+".ff.net.2", ch, 4*ch, true)
		}
		proj(name+".proj_out", ldm+".proj_out", ch)
	}

	conv("conv_in", "input_blocks.0.0", C[0], c.InChannels, 3)
	l.linear("time_embedding.linear_1", "time_embed.0", temb, C[0], true)
	l.linear("time_embedding.linear_2", "time_embed.2", temb, temb, true)
	prev := C[0]
	for i := 0; i < n; i++ {
		for j := 0; j < L; j++ {
			k := 1 + i*(L+1) + j
			in := C[i]
			if j == 0 {
				in = prev
			}
			resnet(fmt.Sprintf("down_blocks.%d.resnets.%d", i, j), fmt.Sprintf("input_blocks.%d.0", k), in, C[i])
			if c.DownBlockTypes[i] == "CrossAttnDownBlock2D" {
				transformer(fmt.Sprintf("down_blocks.%d.attentions.%d", i, j), fmt.Sprintf("input_blocks.%d.1", k), C[i])
			}
		}
		if i < n-1 {
			conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), fmt.Sprintf("input_blocks.%d.0.op", 1+i*(L+1)+L), C[i], C[i], 3)
		}
		prev = C[i]
	}
	last := C[n-1]
	resnet("mid_block.resnets.0", "middle_block.0", last, last)
	transformer("mid_block.attentions.0", "middle_block.1", last)
	resnet("mid_block.resnets.1", "middle_block.2", last, last)
	out := C[n-1]
	for i := 0; i < n; i++ {
		prevOut := out
		out = C[n-1-i]
		in := C[max(n-2-i, 0)]
		attn := c.UpBlockTypes[i] == "CrossAttnUpBlock2D"
		for j := 0; j <= L; j++ {
			k := i*(L+1) + j
			skip := out
			if j == L {
				skip = in
			}
			rin := out
			if j == 0 {
				rin = prevOut
			}
			resnet(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), fmt.Sprintf("output_blocks.%d.0", k), rin+skip, out)
			if attn {
				transformer(fmt.Sprintf("up_blocks.%d.attentions.%d", i, j), fmt.Sprintf("output_blocks.%d.1", k), out)
			}
		}
		if i < n-1 {
			sub := 1
			if attn {
				sub = 2
			}
			conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), fmt.Sprintf("output_blocks.%d.%d.conv", i*(L+1)+L, sub), out, out, 3)
		}
	}
	l.norm("conv_norm_out", "out.0", C[0])
	conv("conv_out", "out.2", c.OutChannels, C[0], 3)
	if pseudo3D {
		for i := range l.ps {
			l.ps[i].ldm = ""
		}
	}
	return l.ps
}

// unetFromDiffusers infers the tensor-deciding config fields from diffusers
// names (pseudo3D: the recipe's names; convs end in .spatial_conv).
func unetFromDiffusers(s nameSet, pseudo3D bool) (map[string]any, error) {
	cv := func(n string) string {
		if pseudo3D {
			return n + ".spatial_conv.weight"
		}
		return n + ".weight"
	}
	c0, err := s.dim(cv("conv_in"), 0)
	if err != nil {
		return nil, err
	}
	in, _ := s.dim(cv("conv_in"), 1)
	outCh, err := s.dim(cv("conv_out"), 0)
	if err != nil {
		return nil, err
	}
	n := s.count("down_blocks.")
	if n == 0 {
		return nil, fmt.Errorf("no down_blocks.* tensors")
	}
	L := s.count("down_blocks.0.resnets.")
	var chans []int
	var down, up []string
	for i := 0; i < n; i++ {
		ch, err := s.dim(cv(fmt.Sprintf("down_blocks.%d.resnets.0.conv1", i)), 0)
		if err != nil {
			return nil, err
		}
		chans = append(chans, ch)
		if s.has(fmt.Sprintf("down_blocks.%d.attentions.0.norm.weight", i)) {
			down = append(down, "CrossAttnDownBlock2D")
		} else {
			down = append(down, "DownBlock2D")
		}
		if s.has(fmt.Sprintf("up_blocks.%d.attentions.0.norm.weight", i)) {
			up = append(up, "CrossAttnUpBlock2D")
		} else {
			up = append(up, "UpBlock2D")
		}
	}
	_ = c0
	cfg := map[string]any{"norm_num_groups": groupsFor(chans), "in_channels": in, "out_channels": outCh, "block_out_channels": chans,
		"layers_per_block": L, "down_block_types": down, "up_block_types": up}
	return cfg, inferAttention(s, cfg, "mid_block.attentions.0")
}

// inferAttention fills cross_attention_dim, use_linear_projection and
// transformer_layers_per_block from the transformer at prefix.
func inferAttention(s nameSet, cfg map[string]any, prefix string) error {
	k, ok := s.firstWithSuffix(".attn2.to_k.weight")
	if !ok {
		return fmt.Errorf("no cross-attention tensors (*.attn2.to_k.weight)")
	}
	ctx, err := s.dim(k, 1)
	if err != nil {
		return err
	}
	cfg["cross_attention_dim"] = ctx
	if sh, ok := s[prefix+".proj_in.weight"]; ok {
		cfg["use_linear_projection"] = len(sh) == 2
	}
	if t := s.count(prefix + ".transformer_blocks."); t > 0 {
		cfg["transformer_layers_per_block"] = t
	}
	return nil
}

// unetFromLDM infers the config fields from an original-layout UNet
// (names without the model.diffusion_model. prefix).
func unetFromLDM(s nameSet) (map[string]any, error) {
	in, err := s.dim("input_blocks.0.0.weight", 1)
	if err != nil {
		return nil, err
	}
	outCh, err := s.dim("out.2.weight", 0)
	if err != nil {
		return nil, err
	}
	nIn := s.count("input_blocks.")
	var chans []int
	var down []string
	L := -1
	j := 0
	for k := 1; k < nIn; k++ {
		p := fmt.Sprintf("input_blocks.%d.", k)
		if s.has(p + "0.op.weight") {
			if L < 0 {
				L = j
			} else if j != L {
				return nil, fmt.Errorf("down level %d has %d resnets, level 0 has %d", len(chans), j, L)
			}
			j = 0
			continue
		}
		ch, err := s.dim(p+"0.out_layers.3.weight", 0)
		if err != nil {
			return nil, err
		}
		if j == 0 {
			chans = append(chans, ch)
			if s.has(p + "1.norm.weight") {
				down = append(down, "CrossAttnDownBlock2D")
			} else {
				down = append(down, "DownBlock2D")
			}
		}
		j++
	}
	if L < 0 {
		L = j
	}
	if len(chans) == 0 || L == 0 {
		return nil, fmt.Errorf("no input_blocks resnets")
	}
	var up []string
	for i := range chans {
		if s.has(fmt.Sprintf("output_blocks.%d.1.norm.weight", i*(L+1))) {
			up = append(up, "CrossAttnUpBlock2D")
		} else {
			up = append(up, "UpBlock2D")
		}
	}
	cfg := map[string]any{"norm_num_groups": groupsFor(chans), "in_channels": in, "out_channels": outCh, "block_out_channels": chans,
		"layers_per_block": L, "down_block_types": down, "up_block_types": up}
	return cfg, inferAttention(s, cfg, "middle_block.1")
}

// unetDefaults are UNet2DConditionModel's config for SD-1.x; fields the
// tensors cannot tell (heads, groups) keep these values unless overridden.
func unetDefaults() map[string]any {
	return map[string]any{
		"_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
		"center_input_sample": false, "cross_attention_dim": 768, "downsample_padding": 1,
		"flip_sin_to_cos": true, "freq_shift": 0, "mid_block_scale_factor": 1, "mid_block_type": "UNetMidBlock2DCrossAttn",
		"norm_eps": 1e-5, "norm_num_groups": 32, "sample_size": 64, "use_linear_projection": false,
		"transformer_layers_per_block": 1, "upcast_attention": false, "only_cross_attention": false,
		"dual_cross_attention": false, "resnet_time_scale_shift": "default", "time_embedding_type": "positional",
		"conv_in_kernel": 3, "conv_out_kernel": 3,
	}
}

// unetAssumed names the defaults a synthesised UNet config relies on.
var unetAssumed = []string{"attention_head_dim", "norm_num_groups", "norm_eps", "sample_size"}

// isPseudo3D reports whether names are in the recipe's inflated layout.
func isPseudo3D(s nameSet) bool {
	for n := range s {
		if strings.Contains(n, ".temporal_conv.") || strings.Contains(n, ".attn_temporal.") {
			return true
		}
	}
	return false
}

// groupsFor is SD's 32 norm groups when 32 divides every width, else the
// largest count up to 32 that does (tensors do not store the group count).
func groupsFor(chans []int) int {
	for g := 32; g > 1; g-- {
		ok := true
		for _, c := range chans {
			ok = ok && c%g == 0
		}
		if ok {
			return g
		}
	}
	return 1
}
