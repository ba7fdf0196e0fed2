package model

import (
	"encoding/json"
	"fmt"
)

// CLIPTextConfig is the part of transformers' CLIPTextConfig that decides
// the text encoder.
type CLIPTextConfig struct {
	VocabSize        int     `json:"vocab_size"`
	HiddenSize       int     `json:"hidden_size"`
	IntermediateSize int     `json:"intermediate_size"`
	Layers           int     `json:"num_hidden_layers"`
	Heads            int     `json:"num_attention_heads"`
	MaxPositions     int     `json:"max_position_embeddings"`
	HiddenAct        string  `json:"hidden_act"`
	LayerNormEps     float64 `json:"layer_norm_eps"`
}

// ParseCLIPTextConfig reads a text_encoder/config.json; absent fields take
// CLIPTextConfig's defaults (SD-1.5's text encoder).
func ParseCLIPTextConfig(b []byte) (CLIPTextConfig, error) {
	c := CLIPTextConfig{VocabSize: 49408, HiddenSize: 512, IntermediateSize: 2048, Layers: 12, Heads: 8,
		MaxPositions: 77, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("text encoder config: %w", err)
	}
	return c, c.Validate()
}

// Validate reports a config no text encoder can be built from.
func (c CLIPTextConfig) Validate() error {
	if c.VocabSize < 1 || c.HiddenSize < 1 || c.IntermediateSize < 1 || c.Layers < 1 || c.Heads < 1 ||
		c.HiddenSize%c.Heads != 0 || c.MaxPositions < 2 || !(c.LayerNormEps > 0) {
		return fmt.Errorf("text encoder config: bad sizes %+v", c)
	}
	if c.HiddenAct != "quick_gelu" && c.HiddenAct != "gelu" {
		return fmt.Errorf("text encoder config: hidden_act %q not supported (want quick_gelu or gelu)", c.HiddenAct)
	}
	return nil
}

// DescribeCLIPText is CLIPTextModel up to last_hidden_state: token ids
// (N, MaxPositions) to (N, MaxPositions, HiddenSize). Token and position
// embeddings, pre-LayerNorm layers of causal self-attention and an MLP,
// the final LayerNorm; no attention mask besides the causal one (as SD
// calls it). Parameters carry transformers-5 names (no "text_model.").
func DescribeCLIPText(c CLIPTextConfig) (*Net, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	net := &Net{Timesteps: -1, Context: -1, Downscale: 1, Marks: map[string]int{}}
	b := &builder{net: net}
	L, D := c.MaxPositions, c.HiddenSize
	eps := float32(c.LayerNormEps)
	net.Input = b.value(Value{Channels: 1, Seq: SeqFixed, Length: L})
	tok := b.param("embeddings.token_embedding.weight", InitUniform, D, c.VocabSize, D)
	pos := b.param("embeddings.position_embedding.weight", InitUniform, D, L, D)
	h := b.layer(Layer{Kind: TokenEmbed, Name: "embeddings", In: []int{net.Input}, Params: []string{tok, pos}},
		Value{Channels: D, Seq: SeqFixed, Length: L})
	act := QuickGELU
	if c.HiddenAct == "gelu" {
		act = GELU
	}
	for i := 0; i < c.Layers; i++ {
		name := fmt.Sprintf("encoder.layers.%d", i)
		x := b.layerNorm(name+".layer_norm1", h, eps)
		q := b.seqLinear(name+".self_attn.q_proj", x, D, true)
		k := b.seqLinear(name+".self_attn.k_proj", x, D, true)
		v := b.seqLinear(name+".self_attn.v_proj", x, D, true)
		a := b.layer(Layer{Kind: SeqAttention, Name: name + ".self_attn", In: []int{q, k, v}, Heads: c.Heads, Causal: true}, b.shape(q))
		h = b.add(h, b.seqLinear(name+".self_attn.out_proj", a, D, true))
		x = b.layerNorm(name+".layer_norm2", h, eps)
		x = b.unary(act, b.seqLinear(name+".mlp.fc1", x, c.IntermediateSize, true))
		h = b.add(h, b.seqLinear(name+".mlp.fc2", x, D, true))
		net.Marks[name] = h
	}
	net.Output = b.layerNorm("final_layer_norm", h, eps)
	return net, net.Check()
}

// CLIPText is a loaded CLIP text encoder.
type CLIPText struct {
	Config CLIPTextConfig
	Net    *Net
	Params *Params
}

// LoadCLIPText describes the text encoder of c and reads its parameters.
func LoadCLIPText(c CLIPTextConfig, read ReadTensor) (*CLIPText, error) {
	net, err := DescribeCLIPText(c)
	if err != nil {
		return nil, err
	}
	p, err := loadParams(read, net)
	if err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	return &CLIPText{Config: c, Net: net, Params: p}, nil
}

// Encode returns last_hidden_state (n, MaxPositions, HiddenSize) of n
// sequences of MaxPositions token ids.
func (t *CLIPText) Encode(ids [][]int) ([]float32, error) {
	in, err := t.IDs(ids)
	if err != nil {
		return nil, err
	}
	out, err := RunNet(t.Net, t.Params, len(ids), 1, 1, map[int][]float32{t.Net.Input: in}, t.Net.Output)
	if err != nil {
		return nil, err
	}
	return out[t.Net.Output], nil
}

// IDs lays token id sequences out as the net's input (one float per id),
// checking each has the encoder's length.
func (t *CLIPText) IDs(ids [][]int) ([]float32, error) {
	L := t.Config.MaxPositions
	in := make([]float32, 0, len(ids)*L)
	for i, seq := range ids {
		if len(seq) != L {
			return nil, fmt.Errorf("text encoder: sequence %d has %d ids, want %d", i, len(seq), L)
		}
		for _, id := range seq {
			in = append(in, float32(id))
		}
	}
	return in, nil
}
