package weights

import (
	"encoding/json"
	"fmt"
)

// vaeConfig holds the AutoencoderKL config fields that decide its tensors.
type vaeConfig struct {
	InChannels           int      `json:"in_channels"`
	OutChannels          int      `json:"out_channels"`
	BlockOutChannels     []int    `json:"block_out_channels"`
	LayersPerBlock       int      `json:"layers_per_block"`
	LatentChannels       int      `json:"latent_channels"`
	DownBlockTypes       []string `json:"down_block_types"`
	UpBlockTypes         []string `json:"up_block_types"`
	UseQuantConv         *bool    `json:"use_quant_conv"`
	UsePostQuantConv     *bool    `json:"use_post_quant_conv"`
	MidBlockAddAttention *bool    `json:"mid_block_add_attention"`
}

func parseVAEConfig(b []byte) (*vaeConfig, error) {
	var c vaeConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("vae config: %v", err)
	}
	n := len(c.BlockOutChannels)
	switch {
	case n == 0:
		return nil, fmt.Errorf("vae config: block_out_channels is empty")
	case c.LayersPerBlock < 1 || c.LayersPerBlock > 64 || c.LatentChannels < 1 || c.InChannels < 1 || c.OutChannels < 1:
		return nil, fmt.Errorf("vae config: bad layers_per_block, latent_channels or channel counts")
	case c.MidBlockAddAttention != nil && !*c.MidBlockAddAttention:
		return nil, fmt.Errorf("vae config: mid_block_add_attention false not supported")
	}
	for _, t := range c.DownBlockTypes {
		if t != "DownEncoderBlock2D" {
			return nil, fmt.Errorf("vae config: down block type %q not supported", t)
		}
	}
	for _, t := range c.UpBlockTypes {
		if t != "UpDecoderBlock2D" {
			return nil, fmt.Errorf("vae config: up block type %q not supported", t)
		}
	}
	for _, ch := range c.BlockOutChannels {
		if ch < 1 || ch > 1<<16 {
			return nil, fmt.Errorf("vae config: block_out_channels %v", c.BlockOutChannels)
		}
	}
	return &c, nil
}

// vaeParams lists AutoencoderKL's tensors under diffusers and LDM names.
func vaeParams(c *vaeConfig) []param {
	var l paramList
	C := c.BlockOutChannels
	n := len(C)
	L := c.LayersPerBlock
	z := c.LatentChannels
	resnet := func(name, ldm string, in, out int) {
		l.norm(name+".norm1", ldm+".norm1", in)
		l.conv(name+".conv1", ldm+".conv1", out, in, 3)
		l.norm(name+".norm2", ldm+".norm2", out)
		l.conv(name+".conv2", ldm+".conv2", out, out, 3)
		if in != out {
			l.conv(name+".conv_shortcut", ldm+".nin_shortcut", out, in, 1)
		}
	}
	mid := func(name, ldm string, ch int) {
		resnet(name+".resnets.0", ldm+".block_1", ch, ch)
		l.norm(name+".attentions.0.group_norm", ldm+".attn_1.norm", ch)
		for _, k := range [][2]string{{"to_q", "q"}, {"to_k", "k"}, {"to_v", "v"}, {"to_out.0", "proj_out"}} {
			l.ps = append(l.ps, param{name: name + ".attentions.0." + k[0] + ".weight", ldm: ldm + ".attn_1." + k[1] + ".weight",
				shape: []int{ch, ch}, ldmShape: []int{ch, ch, 1, 1}})
			l.add(name+".attentions.0."+k[0]+".bias", ldm+".attn_1."+k[1]+".bias", ch)
		}
		resnet(name+".resnets.1", ldm+".block_2", ch, ch)
	}
	l.conv("encoder.conv_in", "encoder.conv_in", C[0], c.InChannels, 3)
	prev := C[0]
	for i := 0; i < n; i++ {
		for j := 0; j < L; j++ {
			in := C[i]
			if j == 0 {
				in = prev
			}
			resnet(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, j), fmt.Sprintf("encoder.down.%d.block.%d", i, j), in, C[i])
		}
		if i < n-1 {
			l.conv(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i), fmt.Sprintf("encoder.down.%d.downsample.conv", i), C[i], C[i], 3)
		}
		prev = C[i]
	}
	last := C[n-1]
	mid("encoder.mid_block", "encoder.mid", last)
	l.norm("encoder.conv_norm_out", "encoder.norm_out", last)
	l.conv("encoder.conv_out", "encoder.conv_out", 2*z, last, 3)
	if c.UseQuantConv == nil || *c.UseQuantConv {
		l.conv("quant_conv", "quant_conv", 2*z, 2*z, 1)
	}
	if c.UsePostQuantConv == nil || *c.UsePostQuantConv {
		l.conv("post_quant_conv", "post_quant_conv", z, z, 1)
	}
	l.conv("decoder.conv_in", "decoder.conv_in", last, z, 3)
	mid("decoder.mid_block", "decoder.mid", last)
	out := last
	for i := 0; i < n; i++ {
		prevOut := out
		out = C[n-1-i]
		for j := 0; j <= L; j++ {
			in := out
			if j == 0 {
				in = prevOut
			}
			resnet(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j), fmt.Sprintf("decoder.up.%d.block.%d", n-1-i, j), in, out)
		}
		if i < n-1 {
			l.conv(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), fmt.Sprintf("decoder.up.%d.upsample.conv", n-1-i), out, out, 3)
		}
	}
	l.norm("decoder.conv_norm_out", "decoder.norm_out", C[0])
	l.conv("decoder.conv_out", "decoder.conv_out", c.OutChannels, C[0], 3)
	return l.ps
}

// vaeFromDiffusers infers the config fields from diffusers VAE names.
func vaeFromDiffusers(s nameSet) (map[string]any, error) {
	return vaeInfer(s, "encoder.conv_in.weight", "encoder.down_blocks.", "encoder.down_blocks.%d.resnets.", "encoder.down_blocks.%d.resnets.0.conv1.weight",
		"post_quant_conv.weight", "decoder.conv_out.weight", "decoder.conv_in.weight")
}

// vaeFromLDM infers them from an original-layout VAE (first_stage_model. removed).
func vaeFromLDM(s nameSet) (map[string]any, error) {
	return vaeInfer(s, "encoder.conv_in.weight", "encoder.down.", "encoder.down.%d.block.", "encoder.down.%d.block.0.conv1.weight",
		"post_quant_conv.weight", "decoder.conv_out.weight", "decoder.conv_in.weight")
}

func vaeInfer(s nameSet, convIn, downs, resnets, conv1, postQuant, convOut, decIn string) (map[string]any, error) {
	in, err := s.dim(convIn, 1)
	if err != nil {
		return nil, err
	}
	n := s.count(downs)
	if n == 0 {
		return nil, fmt.Errorf("no %s* tensors", downs)
	}
	L := s.count(fmt.Sprintf(resnets, 0))
	var chans []int
	var down, up []string
	for i := 0; i < n; i++ {
		ch, err := s.dim(fmt.Sprintf(conv1, i), 0)
		if err != nil {
			return nil, err
		}
		chans = append(chans, ch)
		down = append(down, "DownEncoderBlock2D")
		up = append(up, "UpDecoderBlock2D")
	}
	z, err := s.dim(decIn, 1)
	if err != nil {
		return nil, err
	}
	out, err := s.dim(convOut, 0)
	if err != nil {
		return nil, err
	}
	return map[string]any{"norm_num_groups": groupsFor(chans), "in_channels": in, "out_channels": out, "block_out_channels": chans, "layers_per_block": L,
		"latent_channels": z, "down_block_types": down, "up_block_types": up,
		"use_quant_conv": s.has("quant_conv.weight"), "use_post_quant_conv": s.has(postQuant)}, nil
}

func vaeDefaults() map[string]any {
	return map[string]any{"_class_name": "AutoencoderKL", "act_fn": "silu", "norm_num_groups": 32, "sample_size": 512,
		"scaling_factor": 0.18215, "force_upcast": true, "mid_block_add_attention": true, "latents_mean": nil,
		"latents_std": nil, "shift_factor": nil, "use_quant_conv": true, "use_post_quant_conv": true}
}

var vaeAssumed = []string{"norm_num_groups", "scaling_factor", "sample_size"}

// vaeLegacyNames maps diffusers' pre-0.14 VAE attention names to today's.
var vaeLegacyNames = map[string]string{"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
