package model

import (
	"encoding/json"
	"fmt"
	"math"
)

// VAEConfig is the part of diffusers' AutoencoderKL config.json that
// decides the network (DownEncoderBlock2D / UpDecoderBlock2D blocks only).
type VAEConfig struct {
	InChannels       int     `json:"in_channels"`
	OutChannels      int     `json:"out_channels"`
	BlockOutChannels []int   `json:"block_out_channels"`
	LayersPerBlock   int     `json:"layers_per_block"`
	LatentChannels   int     `json:"latent_channels"`
	NormGroups       int     `json:"norm_num_groups"`
	ScalingFactor    float64 `json:"scaling_factor"`
	UseQuantConv     bool    `json:"use_quant_conv"`
	UsePostQuantConv bool    `json:"use_post_quant_conv"`
}

// vaeEps is the epsilon of every GroupNorm of SD's VAE.
const vaeEps = 1e-6

// ParseVAEConfig reads a diffusers vae/config.json; absent fields take
// AutoencoderKL's defaults.
func ParseVAEConfig(b []byte) (VAEConfig, error) {
	c := VAEConfig{InChannels: 3, OutChannels: 3, BlockOutChannels: []int{64}, LayersPerBlock: 1, LatentChannels: 4,
		NormGroups: 32, ScalingFactor: 0.18215, UseQuantConv: true, UsePostQuantConv: true}
	var raw struct {
		DownBlockTypes []string `json:"down_block_types"`
		UpBlockTypes   []string `json:"up_block_types"`
		MidAttention   *bool    `json:"mid_block_add_attention"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("vae config: %w", err)
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return c, fmt.Errorf("vae config: %w", err)
	}
	for _, t := range raw.DownBlockTypes {
		if t != "DownEncoderBlock2D" {
			return c, fmt.Errorf("vae config: down block type %q not supported (want DownEncoderBlock2D)", t)
		}
	}
	for _, t := range raw.UpBlockTypes {
		if t != "UpDecoderBlock2D" {
			return c, fmt.Errorf("vae config: up block type %q not supported (want UpDecoderBlock2D)", t)
		}
	}
	if raw.MidAttention != nil && !*raw.MidAttention {
		return c, fmt.Errorf("vae config: mid_block_add_attention false is not supported")
	}
	if len(raw.DownBlockTypes) > 0 && len(raw.DownBlockTypes) != len(c.BlockOutChannels) {
		return c, fmt.Errorf("vae config: %d down blocks for %d block_out_channels", len(raw.DownBlockTypes), len(c.BlockOutChannels))
	}
	return c, c.Validate()
}

// Validate reports a config no VAE can be built from.
func (c VAEConfig) Validate() error {
	if len(c.BlockOutChannels) == 0 || len(c.BlockOutChannels) > 8 || c.LayersPerBlock < 1 || c.LatentChannels < 1 ||
		c.InChannels < 1 || c.OutChannels < 1 || c.NormGroups < 1 {
		return fmt.Errorf("vae config: bad sizes %+v", c)
	}
	for _, ch := range c.BlockOutChannels {
		if ch%c.NormGroups != 0 {
			return fmt.Errorf("vae config: %d channels are not a multiple of norm_num_groups %d", ch, c.NormGroups)
		}
	}
	if !(c.ScalingFactor > 0) || math.IsInf(c.ScalingFactor, 0) {
		return fmt.Errorf("vae config: scaling_factor %v, want > 0", c.ScalingFactor)
	}
	return nil
}

// Downscale is the factor between an image and its latent.
func (c VAEConfig) Downscale() int { return 1 << (len(c.BlockOutChannels) - 1) }

// vaeResnet is diffusers' ResnetBlock2D without a time embedding.
func (b *builder) vaeResnet(name string, x, out, groups int) int {
	in := b.shape(x)
	h := b.silu(b.sdNorm(name+".norm1", x, groups, vaeEps))
	h = b.sdConv(name+".conv1", h, out, 3)
	h = b.silu(b.sdNorm(name+".norm2", h, groups, vaeEps))
	h = b.sdConv(name+".conv2", h, out, 3)
	skip := x
	if in.Channels != out {
		skip = b.sdConv(name+".conv_shortcut", x, out, 1)
	}
	return b.add(skip, h)
}

// vaeAttention is the mid block's single-head attention over all
// positions: GroupNorm, q/k/v linears over tokens, attention, out linear,
// plus the input.
func (b *builder) vaeAttention(name string, x, groups int) int {
	in := b.shape(x)
	c := in.Channels
	h := b.sdNorm(name+".group_norm", x, groups, vaeEps)
	t := b.layer(Layer{Kind: ToTokens, In: []int{h}}, Value{Channels: c, Scale: in.Scale, Seq: SeqSpatial})
	q := b.seqLinear(name+".to_q", t, c, true)
	k := b.seqLinear(name+".to_k", t, c, true)
	v := b.seqLinear(name+".to_v", t, c, true)
	a := b.layer(Layer{Kind: SeqAttention, Name: name, In: []int{q, k, v}, Heads: 1}, b.shape(q))
	o := b.seqLinear(name+".to_out.0", a, c, true)
	f := b.layer(Layer{Kind: ToFrames, In: []int{o}}, in)
	return b.add(x, f)
}

func (b *builder) vaeMid(name string, x, groups int) int {
	c := b.shape(x).Channels
	x = b.vaeResnet(name+".resnets.0", x, c, groups)
	x = b.vaeAttention(name+".attentions.0", x, groups)
	return b.vaeResnet(name+".resnets.1", x, c, groups)
}

// DescribeVAEEncoder is AutoencoderKL's encoder and quant_conv: an image
// (N, InChannels, H, W) in [-1, 1] to the moments (N, 2*LatentChannels,
// H/f, W/f), mean then log-variance. Parameters carry diffusers' names.
func DescribeVAEEncoder(c VAEConfig) (*Net, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	net := &Net{Timesteps: -1, Context: -1, Downscale: c.Downscale(), Marks: map[string]int{}}
	b := &builder{net: net}
	net.Input = b.value(Value{Channels: c.InChannels, Scale: 1})
	g := c.NormGroups
	h := b.sdConv("encoder.conv_in", net.Input, c.BlockOutChannels[0], 3)
	for i, ch := range c.BlockOutChannels {
		for j := 0; j < c.LayersPerBlock; j++ {
			h = b.vaeResnet(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, j), h, ch, g)
		}
		if i != len(c.BlockOutChannels)-1 {
			name := fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i)
			in := b.shape(h)
			w := b.param(name+".weight", InitUniform, ch*9, ch, ch, 3, 3)
			bias := b.param(name+".bias", InitUniform, ch*9, ch)
			h = b.layer(Layer{Kind: Conv2DPadEnd, Name: name, In: []int{h}, Params: []string{w, bias}, Stride: 2},
				Value{Channels: ch, Scale: in.Scale * 2})
		}
		net.Marks[fmt.Sprintf("encoder.down_blocks.%d", i)] = h
	}
	h = b.vaeMid("encoder.mid_block", h, g)
	net.Marks["encoder.mid_block"] = h
	h = b.silu(b.sdNorm("encoder.conv_norm_out", h, g, vaeEps))
	h = b.sdConv("encoder.conv_out", h, 2*c.LatentChannels, 3)
	if c.UseQuantConv {
		h = b.sdConv("quant_conv", h, 2*c.LatentChannels, 1)
	}
	net.Output = h
	return net, net.Check()
}

// DescribeVAEDecoder is post_quant_conv and AutoencoderKL's decoder: a
// latent (N, LatentChannels, H/f, W/f) to an image (N, OutChannels, H, W).
func DescribeVAEDecoder(c VAEConfig) (*Net, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	f := c.Downscale()
	net := &Net{Timesteps: -1, Context: -1, Downscale: f, Marks: map[string]int{}}
	b := &builder{net: net}
	net.Input = b.value(Value{Channels: c.LatentChannels, Scale: f})
	g := c.NormGroups
	n := len(c.BlockOutChannels)
	h := net.Input
	if c.UsePostQuantConv {
		h = b.sdConv("post_quant_conv", h, c.LatentChannels, 1)
	}
	h = b.sdConv("decoder.conv_in", h, c.BlockOutChannels[n-1], 3)
	h = b.vaeMid("decoder.mid_block", h, g)
	net.Marks["decoder.mid_block"] = h
	for i := 0; i < n; i++ {
		ch := c.BlockOutChannels[n-1-i]
		for j := 0; j <= c.LayersPerBlock; j++ {
			h = b.vaeResnet(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j), h, ch, g)
		}
		if i != n-1 {
			hs := b.shape(h)
			h = b.layer(Layer{Kind: Upsample, In: []int{h}}, Value{Channels: hs.Channels, Scale: hs.Scale / 2})
			h = b.sdConv(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), h, ch, 3)
		}
		net.Marks[fmt.Sprintf("decoder.up_blocks.%d", i)] = h
	}
	h = b.silu(b.sdNorm("decoder.conv_norm_out", h, g, vaeEps))
	net.Output = b.sdConv("decoder.conv_out", h, c.OutChannels, 3)
	return net, net.Check()
}

// VAE is a loaded AutoencoderKL: its encoder and decoder nets and their
// parameters (float32, diffusers' names).
type VAE struct {
	Config           VAEConfig
	Encoder, Decoder *Net
	Params           *Params
}

// ReadTensor fills dst (len = the element count of shape) with the named
// tensor converted to float32, or reports why it cannot (missing, another
// shape). trainer/weights sources give one with weights.Reader.
type ReadTensor func(name string, shape []int, dst []float32) error

// LoadVAE describes the VAE of c and reads its parameters.
func LoadVAE(c VAEConfig, read ReadTensor) (*VAE, error) {
	enc, err := DescribeVAEEncoder(c)
	if err != nil {
		return nil, err
	}
	dec, err := DescribeVAEDecoder(c)
	if err != nil {
		return nil, err
	}
	p, err := loadParams(read, enc, dec)
	if err != nil {
		return nil, fmt.Errorf("vae: %w", err)
	}
	return &VAE{Config: c, Encoder: enc, Decoder: dec, Params: p}, nil
}

// loadParams reads the parameters of nets (each name once).
func loadParams(read ReadTensor, nets ...*Net) (*Params, error) {
	p := &Params{byName: map[string]*Param{}}
	for _, net := range nets {
		for _, s := range net.Params {
			if p.byName[s.Name] != nil {
				continue
			}
			q := &Param{ParamSpec: s, Data: make([]float32, s.Size())}
			if err := read(s.Name, s.Shape, q.Data); err != nil {
				return nil, err
			}
			p.List = append(p.List, q)
			p.byName[s.Name] = q
		}
	}
	return p, nil
}

// Encode runs the encoder on n images (n, InChannels, h, w) in [-1, 1] and
// returns the diagonal Gaussian's mean and log-variance (n, LatentChannels,
// h/f, w/f), the log-variance clamped to [-30, 20] as diffusers does (no
// scaling factor applied).
func (v *VAE) Encode(images []float32, n, h, w int) (mean, logvar []float32, err error) {
	out, err := RunNet(v.Encoder, v.Params, n, h, w, map[int][]float32{v.Encoder.Input: images}, v.Encoder.Output)
	if err != nil {
		return nil, nil, err
	}
	mean, logvar = v.SplitMoments(out[v.Encoder.Output], n, h, w)
	return mean, logvar, nil
}

// SplitMoments splits the encoder's output for n images of h x w (each
// image's mean, then its log-variance) into the means and the
// log-variances, clamped to [-30, 20] as diffusers' DiagonalGaussian.
func (v *VAE) SplitMoments(m []float32, n, h, w int) (mean, logvar []float32) {
	L := v.Config.LatentChannels
	f := v.Config.Downscale()
	p := (h / f) * (w / f)
	mean, logvar = make([]float32, n*L*p), make([]float32, n*L*p)
	for i := 0; i < n; i++ {
		copy(mean[i*L*p:(i+1)*L*p], m[(2*i)*L*p:(2*i+1)*L*p])
		lv := logvar[i*L*p : (i+1)*L*p]
		copy(lv, m[(2*i+1)*L*p:(2*i+2)*L*p])
		for j, x := range lv {
			lv[j] = min(max(x, -30), 20)
		}
	}
	return mean, logvar
}

// Decode runs the decoder on n latents (n, LatentChannels, h, w) (not
// scaled: divide a scaled latent by ScalingFactor first) and returns the
// images (n, OutChannels, h*f, w*f).
func (v *VAE) Decode(latents []float32, n, h, w int) ([]float32, error) {
	f := v.Config.Downscale()
	out, err := RunNet(v.Decoder, v.Params, n, h*f, w*f, map[int][]float32{v.Decoder.Input: latents}, v.Decoder.Output)
	if err != nil {
		return nil, err
	}
	return out[v.Decoder.Output], nil
}
