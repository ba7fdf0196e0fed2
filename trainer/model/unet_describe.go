package model

import "fmt"

// GroupNorm modes of the pseudo-3D UNet's resnets and conv_norm_out.
const (
	// GroupNormPerFrame normalises each frame on its own, as the 2D UNet
	// does: the inflated model with identity temporal layers equals the
	// backbone frame by frame.
	GroupNormPerFrame = "per_frame"
	// GroupNormJoint takes each group's statistics over the frames of a
	// clip together, as the seed recipe's code does (it applies GroupNorm to
	// the 5-D (b, c, f, h, w) tensor): what a model it trained needs.
	GroupNormJoint = "joint"
)

// UNetOptions shape the description of an SD UNet.
type UNetOptions struct {
	// Pseudo3D inflates the UNet to the recipe's video layout: every Conv2d
	// but the transformers' proj_in/proj_out becomes X.spatial_conv (the SD
	// weights) followed by X.temporal_conv (kernel 3 over frames, identity
	// at init), and every transformer block gains norm_temporal and
	// attn_temporal (self-attention over frames, output projection zero at
	// init) after the cross-attention.
	Pseudo3D bool
	// GroupNorm is GroupNormPerFrame (default) or GroupNormJoint (pseudo-3D
	// only).
	GroupNorm string
	// ContextLen is the length of the conditioning sequence (77 when 0).
	ContextLen int
	// TemporalHeads is the head count of attn_temporal (8 when 0).
	TemporalHeads int
}

// ContextTokens is the text-embedding length SD UNets are conditioned on.
const ContextTokens = 77

// Norm eps values diffusers fixes in its transformer blocks.
const (
	transformerNormEps = 1e-6 // Transformer2DModel's GroupNorm
	blockNormEps       = 1e-5 // BasicTransformerBlock's LayerNorms
)

// sdBuilder accumulates an SD UNet description.
type sdBuilder struct {
	builder
	cfg   UNetConfig
	opt   UNetOptions
	temb  int // SiLU of the time embedding, read by every resnet
	ctx   int
	joint bool
}

// DescribeUNet returns the description of the diffusers UNet cfg, with
// diffusers' state-dict names (the recipe's names when pseudo-3D). Its
// inputs are the latent (N, in_channels, H, W), the timesteps (N) and the
// context (N, ContextLen, cross_attention_dim); its output the predicted
// noise (N, out_channels, H, W). Trainable parameters of the pseudo-3D net
// are the temporal ones (IsTemporal).
func DescribeUNet(cfg UNetConfig, opt UNetOptions) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch opt.GroupNorm {
	case "", GroupNormPerFrame:
	case GroupNormJoint:
		if !opt.Pseudo3D {
			return nil, fmt.Errorf("model: group_norm %q needs the pseudo-3D UNet", opt.GroupNorm)
		}
	default:
		return nil, fmt.Errorf("model: group_norm %q, want %s or %s", opt.GroupNorm, GroupNormPerFrame, GroupNormJoint)
	}
	if opt.ContextLen <= 0 {
		opt.ContextLen = ContextTokens
	}
	if opt.TemporalHeads <= 0 {
		opt.TemporalHeads = 8
	}
	levels := len(cfg.BlockOutChannels)
	net := &Net{Video: opt.Pseudo3D, Downscale: 1 << (levels - 1), Marks: map[string]int{}}
	if opt.Pseudo3D {
		net.LossSkip = 1
	}
	b := &sdBuilder{builder: builder{net: net}, cfg: cfg, opt: opt, joint: opt.GroupNorm == GroupNormJoint}
	net.Input = b.value(Value{Channels: cfg.InChannels, Scale: 1})
	net.Timesteps = b.value(Value{Channels: 1, Vector: true})
	net.Context = b.value(Value{Channels: cfg.CrossAttentionDim, Seq: SeqFixed, Length: opt.ContextLen})
	b.ctx = net.Context

	boc := cfg.BlockOutChannels
	te := b.layer(Layer{Kind: SinusoidalEmbed, In: []int{net.Timesteps}, FlipSinToCos: cfg.FlipSinToCos, FreqShift: cfg.FreqShift},
		Value{Channels: boc[0], Vector: true})
	te = b.dense("time_embedding.linear_1", te, cfg.TimeEmbedDim(), true, InitUniform)
	te = b.silu(te)
	te = b.dense("time_embedding.linear_2", te, cfg.TimeEmbedDim(), true, InitUniform)
	net.Marks["time_embedding"] = te
	b.temb = b.silu(te)

	heads := cfg.Heads()
	h := b.sdConv("conv_in", net.Input, boc[0], 3, 1)
	skips := []int{h}
	for i, typ := range cfg.DownBlockTypes {
		name := fmt.Sprintf("down_blocks.%d", i)
		for j := 0; j < cfg.LayersPerBlock; j++ {
			h = b.resnet(fmt.Sprintf("%s.resnets.%d", name, j), h, boc[i])
			if typ == crossDown {
				h = b.transformer(fmt.Sprintf("%s.attentions.%d", name, j), h, heads[i])
			}
			skips = append(skips, h)
		}
		if i != levels-1 {
			h = b.sdConv(name+".downsamplers.0.conv", h, boc[i], 3, 2)
			skips = append(skips, h)
		}
		net.Marks[name] = h
	}
	h = b.resnet("mid_block.resnets.0", h, boc[levels-1])
	h = b.transformer("mid_block.attentions.0", h, heads[levels-1])
	h = b.resnet("mid_block.resnets.1", h, boc[levels-1])
	net.Marks["mid_block"] = h
	for i, typ := range cfg.UpBlockTypes {
		name := fmt.Sprintf("up_blocks.%d", i)
		out := boc[levels-1-i]
		for j := 0; j <= cfg.LayersPerBlock; j++ {
			s := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			hs, ss := b.shape(h), b.shape(s)
			h = b.layer(Layer{Kind: Concat, In: []int{h, s}}, Value{Channels: hs.Channels + ss.Channels, Scale: hs.Scale})
			h = b.resnet(fmt.Sprintf("%s.resnets.%d", name, j), h, out)
			if typ == crossUp {
				h = b.transformer(fmt.Sprintf("%s.attentions.%d", name, j), h, heads[levels-1-i])
			}
		}
		if i != levels-1 {
			hs := b.shape(h)
			h = b.layer(Layer{Kind: Upsample, In: []int{h}}, Value{Channels: hs.Channels, Scale: hs.Scale / 2})
			h = b.sdConv(name+".upsamplers.0.conv", h, out, 3, 1)
		}
		net.Marks[name] = h
	}
	h = b.silu(b.groupNorm("conv_norm_out", h, float32(cfg.NormEps), b.joint))
	net.Output = b.sdConv("conv_out", h, cfg.OutChannels, 3, 1)
	if err := net.Check(); err != nil {
		return nil, err
	}
	return net, nil
}

// sdConv is a Conv2d of the UNet: in the pseudo-3D layout X.spatial_conv
// followed by X.temporal_conv.
func (b *sdBuilder) sdConv(name string, x, k, kernel, stride int) int {
	if !b.opt.Pseudo3D {
		return b.conv(name, x, k, kernel, stride, InitUniform)
	}
	h := b.conv(name+".spatial_conv", x, k, kernel, stride, InitUniform)
	return b.tconv(name+".temporal_conv", h)
}

func (b *sdBuilder) groupNorm(name string, x int, eps float32, joint bool) int {
	in := b.shape(x)
	gm := b.param(name+".weight", InitOnes, 0, in.Channels)
	bt := b.param(name+".bias", InitZeros, 0, in.Channels)
	return b.layer(Layer{Kind: GroupNorm, Name: name, In: []int{x}, Params: []string{gm, bt}, Groups: b.cfg.NormNumGroups, Eps: eps, Joint: joint}, in)
}

func (b *sdBuilder) layerNorm(name string, x int) int {
	in := b.shape(x)
	gm := b.param(name+".weight", InitOnes, 0, in.Channels)
	bt := b.param(name+".bias", InitZeros, 0, in.Channels)
	return b.layer(Layer{Kind: LayerNorm, Name: name, In: []int{x}, Params: []string{gm, bt}, Eps: blockNormEps}, in)
}

// dense is a Linear over the last axis of a vector or sequence value.
func (b *sdBuilder) dense(name string, x, out int, bias bool, init Init) int {
	in := b.shape(x)
	ps := []string{b.param(name+".weight", init, in.Channels, out, in.Channels)}
	if bias {
		ps = append(ps, b.param(name+".bias", biasInit(init), in.Channels, out))
	}
	v := in
	v.Channels = out
	return b.layer(Layer{Kind: Linear, Name: name, In: []int{x}, Params: ps}, v)
}

// resnet is diffusers' ResnetBlock2D.
func (b *sdBuilder) resnet(name string, x, out int) int {
	eps := float32(b.cfg.NormEps)
	h := b.silu(b.groupNorm(name+".norm1", x, eps, b.joint))
	h = b.sdConv(name+".conv1", h, out, 3, 1)
	e := b.dense(name+".time_emb_proj", b.temb, out, true, InitUniform)
	h = b.layer(Layer{Kind: AddChannel, In: []int{h, e}}, b.shape(h))
	h = b.silu(b.groupNorm(name+".norm2", h, eps, b.joint))
	h = b.sdConv(name+".conv2", h, out, 3, 1)
	skip := x
	if b.shape(x).Channels != out {
		skip = b.sdConv(name+".conv_shortcut", x, out, 1, 1)
	}
	return b.add(skip, h)
}

// transformer is diffusers' Transformer2DModel (the spatial transformer).
func (b *sdBuilder) transformer(name string, x, heads int) int {
	in := b.shape(x)
	c := in.Channels
	inner := heads * (c / heads)
	h := b.groupNorm(name+".norm", x, transformerNormEps, false)
	var t int
	if b.cfg.UseLinearProjection {
		t = b.toTokens(h)
		t = b.dense(name+".proj_in", t, inner, true, InitUniform)
	} else {
		h = b.conv(name+".proj_in", h, inner, 1, 1, InitUniform)
		t = b.toTokens(h)
	}
	for k := 0; k < b.cfg.TransformerLayersPerBlock; k++ {
		t = b.block(fmt.Sprintf("%s.transformer_blocks.%d", name, k), t, heads)
	}
	if b.cfg.UseLinearProjection {
		t = b.dense(name+".proj_out", t, c, true, InitUniform)
		h = b.toFrames(t)
	} else {
		h = b.toFrames(t)
		h = b.conv(name+".proj_out", h, c, 1, 1, InitUniform)
	}
	return b.add(h, x)
}

func (b *sdBuilder) toTokens(x int) int {
	in := b.shape(x)
	return b.layer(Layer{Kind: ToTokens, In: []int{x}}, Value{Channels: in.Channels, Scale: in.Scale, Seq: SeqSpatial})
}

func (b *sdBuilder) toFrames(x int) int {
	in := b.shape(x)
	return b.layer(Layer{Kind: ToFrames, In: []int{x}}, Value{Channels: in.Channels, Scale: in.Scale})
}

// block is diffusers' BasicTransformerBlock: self-attention,
// cross-attention over the context, (pseudo-3D: temporal attention),
// GEGLU feed-forward, each pre-normed with a residual.
func (b *sdBuilder) block(name string, t, heads int) int {
	c := b.shape(t).Channels
	n := b.layerNorm(name+".norm1", t)
	t = b.add(b.attention(name+".attn1", n, n, heads, InitUniform), t)
	n = b.layerNorm(name+".norm2", t)
	t = b.add(b.attention(name+".attn2", n, b.ctx, heads, InitUniform), t)
	if b.opt.Pseudo3D {
		in := b.shape(t)
		z := b.layer(Layer{Kind: ToTime, In: []int{t}}, Value{Channels: c, Scale: in.Scale, Seq: SeqFrames})
		n = b.layerNorm(name+".norm_temporal", z)
		z = b.add(b.attention(name+".attn_temporal", n, n, b.opt.TemporalHeads, InitZeros), z)
		t = b.layer(Layer{Kind: FromTime, In: []int{z}}, in)
	}
	n = b.layerNorm(name+".norm3", t)
	f := b.dense(name+".ff.net.0.proj", n, 8*c, true, InitUniform)
	f = b.layer(Layer{Kind: GEGLU, In: []int{f}}, withChannels(b.shape(f), 4*c))
	f = b.dense(name+".ff.net.2", f, c, true, InitUniform)
	return b.add(f, t)
}

func withChannels(v Value, c int) Value {
	v.Channels = c
	return v
}

// attention is diffusers' Attention: to_q of x, to_k and to_v of kv (x
// itself or the context), all without bias, then to_out.0 (initialised
// with outInit: zero for the temporal attention).
func (b *sdBuilder) attention(name string, x, kv, heads int, outInit Init) int {
	c := b.shape(x).Channels
	inner := heads * (c / heads)
	q := b.dense(name+".to_q", x, inner, false, InitUniform)
	k := b.dense(name+".to_k", kv, inner, false, InitUniform)
	v := b.dense(name+".to_v", kv, inner, false, InitUniform)
	a := b.layer(Layer{Kind: SeqAttention, Name: name, In: []int{q, k, v}, Heads: heads}, b.shape(q))
	return b.dense(name+".to_out.0", a, c, true, outInit)
}

// NewNetParams allocates the parameters of net and initialises them by
// their specs (uniform weights, unit norms, identity temporal convs, zero
// temporal output projections) from seed.
func NewNetParams(net *Net, seed uint64) (*Params, error) {
	p, err := allocParams(net)
	if err != nil {
		return nil, err
	}
	p.InitBackbone(seed)
	p.InitTemporal(seed + 1)
	return p, nil
}

// allocParams allocates the parameters of net, zeroed.
func allocParams(net *Net) (*Params, error) {
	p := &Params{byName: make(map[string]*Param, len(net.Params))}
	for _, s := range net.Params {
		if _, dup := p.byName[s.Name]; dup {
			return nil, fmt.Errorf("model: duplicate parameter name %s", s.Name)
		}
		q := &Param{ParamSpec: s, Data: make([]float32, s.Size())}
		p.List = append(p.List, q)
		p.byName[s.Name] = q
	}
	return p, nil
}
