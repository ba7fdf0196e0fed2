package model

import (
	"fmt"
	"strings"

	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// LayerKind names an operation of the network description. Each maps to
// one trainer/nn op (and its plain-Go reference functions).
type LayerKind string

const (
	// TimestepEmbed: In[0] timesteps (N) -> sinusoidal (N, Channels).
	TimestepEmbed LayerKind = "timestep_embedding"
	// Linear: In[0] (N, In) -> (N, Out); Params weight (Out, In), bias (Out).
	Linear LayerKind = "linear"
	// SiLU: element-wise x*sigmoid(x).
	SiLU LayerKind = "silu"
	// Conv2D: frames (N, C, H, W) -> (N, K, H/Stride, W/Stride); Params
	// weight (K, C, KH, KW), bias (K); Stride, Pad.
	Conv2D LayerKind = "conv2d"
	// TemporalConv: kernel 3 over frames of (B*T, C, H, W); Params weight
	// (K, C, 3), bias (K).
	TemporalConv LayerKind = "temporal_conv"
	// GroupNorm: Params gamma (C), beta (C); Groups.
	GroupNorm LayerKind = "group_norm"
	// Attention: In[0] packed qkv (N, 3C, H, W) -> (N, C, H, W); Heads;
	// Temporal selects attention over frames instead of over positions.
	Attention LayerKind = "attention"
	// Upsample: nearest 2x.
	Upsample LayerKind = "upsample2x"
	// Add: In[0] + In[1], same shape.
	Add LayerKind = "add"
	// AddChannel: In[0] (N, C, H, W) + In[1] (N, C) broadcast over H, W.
	AddChannel LayerKind = "add_channel"
	// Concat: channel concatenation of In[0] and In[1].
	Concat LayerKind = "concat"

	// Kinds of the Stable Diffusion UNet (and the VAE / text encoder built
	// on the same ops). Linear also applies row-wise to token sequences:
	// (rows, In) -> (rows, Out), with no bias when Params has one entry.

	// SinusoidalEmbed: In[0] timesteps (N) -> (N, Channels), diffusers'
	// Timesteps projection; FlipSinToCos, FreqShift.
	SinusoidalEmbed LayerKind = "sinusoidal_embedding"
	// LayerNorm: over the last axis (Channels) of a sequence or vector;
	// Params gamma, beta (C); Eps.
	LayerNorm LayerKind = "layer_norm"
	// GEGLU: (rows, 2F) -> (rows, F) = a * GELU(gate) of [a | gate].
	GEGLU LayerKind = "geglu"
	// SeqAttention: In q (N, Lq, C), k and v (N, Lk, C) -> (N, Lq, C);
	// Heads; Causal. Keys and values from a context make it
	// cross-attention.
	SeqAttention LayerKind = "seq_attention"
	// ToTokens: frame (N, C, H, W) -> spatial sequence (N, H*W, C).
	ToTokens LayerKind = "to_tokens"
	// ToFrames: spatial sequence (N, H*W, C) -> frame (N, C, H, W).
	ToFrames LayerKind = "to_frames"
	// ToTime: spatial sequence of a clip batch (B*T, P, C) -> sequences
	// over frames (B*P, T, C).
	ToTime LayerKind = "to_time"
	// FromTime: (B*P, T, C) -> (B*T, P, C), the inverse of ToTime.
	FromTime LayerKind = "from_time"
)

// SeqKind says which token sequence a value is (row-major tokens of
// Channels values each).
type SeqKind string

const (
	// SeqNone: not a sequence (a frame tensor or a vector).
	SeqNone SeqKind = ""
	// SeqSpatial: (N, P, C), the P = (H/Scale)*(W/Scale) positions of each
	// frame.
	SeqSpatial SeqKind = "spatial"
	// SeqFrames: (B*P, T, C), the T frames of each position of each clip.
	SeqFrames SeqKind = "frames"
	// SeqFixed: (N, Length, C), a sequence of fixed length such as the text
	// embedding a UNet is conditioned on (77 tokens).
	SeqFixed SeqKind = "fixed"
)

// Value describes one activation of the network, per frame: a frame tensor
// (N, Channels, H/Scale, W/Scale), with Vector a (N, Channels) matrix
// (Scale 0), or with Seq a token sequence (see SeqKind; Scale sets the
// positions of spatial and frame sequences, Length the tokens of a fixed
// one). N = B*T. Value 0 is the input, value 1 the timesteps (N).
type Value struct {
	Channels int
	Scale    int
	Vector   bool
	Seq      SeqKind `json:",omitempty"`
	Length   int     `json:",omitempty"`
}

// Layer is one operation: it reads values In, writes value Out, and uses
// the named parameters in op order (weight then bias; gamma then beta).
type Layer struct {
	Kind     LayerKind
	Name     string // parameter scope, e.g. "down.1.res.0.conv1"
	In       []int
	Out      int
	Params   []string
	Stride   int     // Conv2D
	Pad      int     // Conv2D
	Groups   int     // GroupNorm
	Eps      float32 // GroupNorm: added to the variance
	Heads    int     // Attention, SeqAttention
	Temporal bool    // Attention over frames; also set on every video-only layer
	// Joint (GroupNorm) takes each group's statistics over the T frames of
	// a clip together, (C/Groups, T, H, W), instead of per frame.
	Joint bool `json:",omitempty"`
	// Causal (SeqAttention) masks keys after the query.
	Causal bool `json:",omitempty"`
	// FlipSinToCos and FreqShift parametrise SinusoidalEmbed.
	FlipSinToCos bool    `json:",omitempty"`
	FreqShift    float64 `json:",omitempty"`
}

// Init says how a parameter starts.
type Init string

const (
	InitUniform  Init = "uniform"  // U(-1/sqrt(fan_in), 1/sqrt(fan_in))
	InitOnes     Init = "ones"     // GroupNorm gamma
	InitZeros    Init = "zeros"    // biases, beta, zero-initialised projections
	InitIdentity Init = "identity" // temporal conv: centre tap = identity
)

// ParamSpec is one parameter: its stable name, shape and initialisation.
type ParamSpec struct {
	Name     string
	Shape    []int
	Init     Init
	FanIn    int
	Temporal bool
}

// Size is the number of elements.
func (p ParamSpec) Size() int {
	n := 1
	for _, d := range p.Shape {
		n *= d
	}
	return n
}

// IsTemporal reports whether a parameter name belongs to the video part of
// the model (the trainable set of the train stage).
func IsTemporal(name string) bool { return strings.Contains(name, "temporal") }

// Net is the backend-neutral description of the network: executors walk
// Layers in order, each reading earlier values.
type Net struct {
	Config    Config
	Video     bool
	Values    []Value
	Layers    []Layer
	Params    []ParamSpec // in creation order: the canonical parameter order
	Input     int         // (N, InChannels, H, W)
	Timesteps int         // (N)
	Output    int         // (N, OutChannels, H, W) predicted noise
	// LossSkip is how many leading frames of each clip the loss ignores
	// (the video model's conditioning frame: 1; the backbone: 0).
	LossSkip int
	// Context is the conditioning sequence input (N, Length, Channels), or
	// -1 when the net takes none.
	Context int
	// Downscale is the factor between the input size and the smallest
	// activation: H and W must be multiples of it.
	Downscale int
	// Marks names values worth inspecting (diffusers' block outputs:
	// "time_embedding", "down_blocks.0", "mid_block", ...).
	Marks map[string]int
}

// CheckSize reports a frame size the net cannot process.
func (n *Net) CheckSize(h, w int) error {
	d := max(1, n.Downscale)
	if h <= 0 || w <= 0 || h%d != 0 || w%d != 0 {
		return fmt.Errorf("model: frame size %dx%d must be a positive multiple of %d", w, h, d)
	}
	return nil
}

// Shape is the concrete shape of value v for a batch of B clips of T
// frames of H x W.
func (n *Net) Shape(v, B, T, H, W int) []int {
	val := n.Values[v]
	N := B * T
	s := max(1, val.Scale)
	P := (H / s) * (W / s)
	switch {
	case val.Vector:
		return []int{N, val.Channels}
	case val.Seq == SeqSpatial:
		return []int{N, P, val.Channels}
	case val.Seq == SeqFrames:
		return []int{B * P, T, val.Channels}
	case val.Seq == SeqFixed:
		return []int{N, val.Length, val.Channels}
	}
	return []int{N, val.Channels, H / s, W / s}
}

// Size is the element count of value v (see Shape).
func (n *Net) Size(v, B, T, H, W int) int {
	e := 1
	for _, d := range n.Shape(v, B, T, H, W) {
		e *= d
	}
	return e
}

// builder accumulates a Net.
type builder struct {
	net    *Net
	embAct int // SiLU of the timestep MLP output, shared by all ResBlocks
}

func (b *builder) value(v Value) int {
	b.net.Values = append(b.net.Values, v)
	return len(b.net.Values) - 1
}

func (b *builder) param(name string, init Init, fanIn int, shape ...int) string {
	b.net.Params = append(b.net.Params, ParamSpec{Name: name, Shape: shape, Init: init, FanIn: fanIn, Temporal: IsTemporal(name)})
	return name
}

func (b *builder) layer(l Layer, out Value) int {
	l.Out = b.value(out)
	l.Temporal = l.Temporal || IsTemporal(l.Name)
	b.net.Layers = append(b.net.Layers, l)
	return l.Out
}

func (b *builder) shape(v int) Value { return b.net.Values[v] }

func (b *builder) conv(name string, x, k, kernel, stride int, init Init) int {
	in := b.shape(x)
	fan := in.Channels * kernel * kernel
	w := b.param(name+".weight", init, fan, k, in.Channels, kernel, kernel)
	bias := b.param(name+".bias", biasInit(init), fan, k)
	return b.layer(Layer{Kind: Conv2D, Name: name, In: []int{x}, Params: []string{w, bias}, Stride: stride, Pad: kernel / 2},
		Value{Channels: k, Scale: in.Scale * stride})
}

func biasInit(w Init) Init {
	if w == InitUniform {
		return InitUniform
	}
	return InitZeros
}

func (b *builder) tconv(name string, x int) int {
	in := b.shape(x)
	c := in.Channels
	w := b.param(name+".weight", InitIdentity, 3*c, c, c, 3)
	bias := b.param(name+".bias", InitZeros, 3*c, c)
	return b.layer(Layer{Kind: TemporalConv, Name: name, In: []int{x}, Params: []string{w, bias}}, in)
}

func (b *builder) norm(name string, x int) int {
	in := b.shape(x)
	gm := b.param(name+".weight", InitOnes, 0, in.Channels)
	bt := b.param(name+".bias", InitZeros, 0, in.Channels)
	groups := b.net.Config.Groups
	return b.layer(Layer{Kind: GroupNorm, Name: name, In: []int{x}, Params: []string{gm, bt}, Groups: groups, Eps: nn.DefaultGroupNormEps}, in)
}

func (b *builder) silu(x int) int {
	return b.layer(Layer{Kind: SiLU, In: []int{x}}, b.shape(x))
}

func (b *builder) linear(name string, x, out int, init Init) int {
	in := b.shape(x)
	w := b.param(name+".weight", init, in.Channels, out, in.Channels)
	bias := b.param(name+".bias", biasInit(init), in.Channels, out)
	return b.layer(Layer{Kind: Linear, Name: name, In: []int{x}, Params: []string{w, bias}}, Value{Channels: out, Vector: true})
}

func (b *builder) add(x, y int) int {
	return b.layer(Layer{Kind: Add, In: []int{x, y}}, b.shape(x))
}

// resBlock: GN-SiLU-conv [-tconv] + emb, GN-SiLU-conv [-tconv], + skip.
func (b *builder) resBlock(name string, x, out int) int {
	in := b.shape(x)
	h := b.silu(b.norm(name+".norm1", x))
	h = b.conv(name+".conv1", h, out, 3, 1, InitUniform)
	if b.net.Video {
		h = b.tconv(name+".temporal_conv1", h)
	}
	e := b.linear(name+".emb_proj", b.embAct, out, InitUniform)
	h = b.layer(Layer{Kind: AddChannel, In: []int{h, e}}, b.shape(h))
	h = b.silu(b.norm(name+".norm2", h))
	h = b.conv(name+".conv2", h, out, 3, 1, InitUniform)
	if b.net.Video {
		h = b.tconv(name+".temporal_conv2", h)
	}
	skip := x
	if in.Channels != out {
		skip = b.conv(name+".skip", x, out, 1, 1, InitUniform)
	}
	return b.add(skip, h)
}

// attnBlock: x + proj(attn(qkv(GN(x)))), spatial then (video) temporal.
func (b *builder) attnBlock(name string, x int) int {
	x = b.attention(name, x, false)
	if b.net.Video {
		x = b.attention(name+".temporal_attn", x, true)
	}
	return x
}

func (b *builder) attention(name string, x int, temporal bool) int {
	c := b.shape(x).Channels
	h := b.norm(name+".norm", x)
	qkv := b.conv(name+".qkv", h, 3*c, 1, 1, InitUniform)
	a := b.layer(Layer{Kind: Attention, Name: name, In: []int{qkv}, Heads: b.net.Config.Heads, Temporal: temporal}, b.shape(h))
	projInit := InitUniform
	if temporal {
		projInit = InitZeros
	}
	o := b.conv(name+".proj", a, c, 1, 1, projInit)
	return b.add(x, o)
}

// Describe returns the network description of cfg: the backbone alone
// (video false) or the video model (backbone plus temporal layers).
func Describe(cfg Config, video bool) (*Net, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	net := &Net{Config: cfg, Video: video, Context: -1, Downscale: cfg.Downscale()}
	if video {
		net.LossSkip = 1
	}
	b := &builder{net: net}
	net.Input = b.value(Value{Channels: cfg.InChannels, Scale: 1})
	net.Timesteps = b.value(Value{Channels: 1, Vector: true})

	base := cfg.BaseChannels
	te := b.layer(Layer{Kind: TimestepEmbed, In: []int{net.Timesteps}}, Value{Channels: base, Vector: true})
	te = b.linear("time_embed.0", te, cfg.TimeEmbedDim, InitUniform)
	te = b.silu(te)
	te = b.linear("time_embed.2", te, cfg.TimeEmbedDim, InitUniform)
	b.embAct = b.silu(te)

	h := b.conv("conv_in", net.Input, base, 3, 1, InitUniform)
	skips := []int{h}
	for i, m := range cfg.ChannelMults {
		for j := 0; j < cfg.BlocksPerLevel; j++ {
			h = b.resBlock(fmt.Sprintf("down.%d.res.%d", i, j), h, base*m)
			if cfg.attnAt(i) {
				h = b.attnBlock(fmt.Sprintf("down.%d.attn.%d", i, j), h)
			}
			skips = append(skips, h)
		}
		if i != len(cfg.ChannelMults)-1 {
			h = b.conv(fmt.Sprintf("down.%d.downsample.conv", i), h, b.shape(h).Channels, 3, 2, InitUniform)
			skips = append(skips, h)
		}
	}
	top := base * cfg.ChannelMults[len(cfg.ChannelMults)-1]
	h = b.resBlock("mid.res.0", h, top)
	if cfg.MidAttention {
		h = b.attnBlock("mid.attn.0", h)
	}
	h = b.resBlock("mid.res.1", h, top)
	for i := len(cfg.ChannelMults) - 1; i >= 0; i-- {
		for j := 0; j <= cfg.BlocksPerLevel; j++ {
			s := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			hs, ss := b.shape(h), b.shape(s)
			h = b.layer(Layer{Kind: Concat, In: []int{h, s}}, Value{Channels: hs.Channels + ss.Channels, Scale: hs.Scale})
			h = b.resBlock(fmt.Sprintf("up.%d.res.%d", i, j), h, base*cfg.ChannelMults[i])
			if cfg.attnAt(i) {
				h = b.attnBlock(fmt.Sprintf("up.%d.attn.%d", i, j), h)
			}
		}
		if i != 0 {
			hs := b.shape(h)
			h = b.layer(Layer{Kind: Upsample, In: []int{h}}, Value{Channels: hs.Channels, Scale: hs.Scale / 2})
			h = b.conv(fmt.Sprintf("up.%d.upsample.conv", i), h, hs.Channels, 3, 1, InitUniform)
		}
	}
	h = b.silu(b.norm("out.norm", h))
	net.Output = b.conv("out.conv", h, cfg.OutChannels, 3, 1, InitUniform)
	if err := net.Check(); err != nil {
		return nil, err
	}
	return net, nil
}

// Check reports a description no executor can run as written: a parameter
// read by more than one layer (the GPU executor writes each parameter's
// gradient once rather than accumulating it, so a shared parameter would
// get only its last layer's share), or a group norm without a positive eps.
// Every executor calls it before walking the layers.
func (n *Net) Check() error {
	owner := map[string]int{}
	for i, l := range n.Layers {
		for _, p := range l.Params {
			if j, ok := owner[p]; ok && j != i {
				return fmt.Errorf("model: parameter %s is used by layer %d (%s %s) and layer %d (%s %s): a parameter may belong to one layer only",
					p, j, n.Layers[j].Kind, n.Layers[j].Name, i, l.Kind, l.Name)
			}
			owner[p] = i
		}
		if (l.Kind == GroupNorm || l.Kind == LayerNorm) && !(l.Eps > 0) {
			return fmt.Errorf("model: layer %d (%s %s): eps %v, want > 0", i, l.Kind, l.Name, l.Eps)
		}
	}
	if n.LossSkip < 0 {
		return fmt.Errorf("model: loss skip %d, want >= 0", n.LossSkip)
	}
	return nil
}

// ParamCount returns the total and temporal parameter counts of the net.
func (n *Net) ParamCount() (total, temporal int) {
	for _, p := range n.Params {
		total += p.Size()
		if p.Temporal {
			temporal += p.Size()
		}
	}
	return total, temporal
}
