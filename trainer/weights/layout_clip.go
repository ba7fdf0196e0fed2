package weights

import (
	"encoding/json"
	"fmt"
)

// clipConfig holds the CLIPTextModel config fields that decide its tensors.
type clipConfig struct {
	VocabSize             int `json:"vocab_size"`
	HiddenSize            int `json:"hidden_size"`
	IntermediateSize      int `json:"intermediate_size"`
	NumHiddenLayers       int `json:"num_hidden_layers"`
	MaxPositionEmbeddings int `json:"max_position_embeddings"`
}

func parseCLIPConfig(b []byte) (*clipConfig, error) {
	var c clipConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("text_encoder config: %v", err)
	}
	if c.VocabSize < 1 || c.HiddenSize < 1 || c.IntermediateSize < 1 || c.NumHiddenLayers < 1 || c.MaxPositionEmbeddings < 1 ||
		c.NumHiddenLayers > 1024 || c.VocabSize > 1<<24 || c.HiddenSize > 1<<16 || c.IntermediateSize > 1<<18 || c.MaxPositionEmbeddings > 1<<16 {
		return nil, fmt.Errorf("text_encoder config: bad sizes %+v", c)
	}
	return &c, nil
}

// clipParams lists CLIPTextModel's tensors (transformers-5 names; the LDM
// name is the same under cond_stage_model.transformer.).
func clipParams(c *clipConfig) []param {
	var l paramList
	H, I := c.HiddenSize, c.IntermediateSize
	l.add("embeddings.token_embedding.weight", "embeddings.token_embedding.weight", c.VocabSize, H)
	l.add("embeddings.position_embedding.weight", "embeddings.position_embedding.weight", c.MaxPositionEmbeddings, H)
	for i := 0; i < c.NumHiddenLayers; i++ {
		p := fmt.Sprintf("encoder.layers.%d.", i)
		for _, k := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			l.linear(p+"self_attn."+k, p+"self_attn."+k, H, H, true)
		}
		l.norm(p+"layer_norm1", p+"layer_norm1", H)
		l.linear(p+"mlp.fc1", p+"mlp.fc1", I, H, true)
		l.linear(p+"mlp.fc2", p+"mlp.fc2", H, I, true)
		l.norm(p+"layer_norm2", p+"layer_norm2", H)
	}
	l.norm("final_layer_norm", "final_layer_norm", H)
	return l.ps
}

// clipFromNames infers the config fields from transformers-5 names.
func clipFromNames(s nameSet) (map[string]any, error) {
	v, err := s.dim("embeddings.token_embedding.weight", 0)
	if err != nil {
		return nil, err
	}
	h, _ := s.dim("embeddings.token_embedding.weight", 1)
	p, err := s.dim("embeddings.position_embedding.weight", 0)
	if err != nil {
		return nil, err
	}
	inter, err := s.dim("encoder.layers.0.mlp.fc1.weight", 0)
	if err != nil {
		return nil, err
	}
	heads := h / 64
	if heads < 1 || h%64 != 0 {
		heads = 1
	}
	return map[string]any{"vocab_size": v, "hidden_size": h, "max_position_embeddings": p, "intermediate_size": inter,
		"num_hidden_layers": s.count("encoder.layers."), "num_attention_heads": heads}, nil
}

func clipDefaults() map[string]any {
	return map[string]any{"architectures": []string{"CLIPTextModel"}, "model_type": "clip_text_model",
		"hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0, "bos_token_id": 49406,
		"eos_token_id": 49407, "pad_token_id": 1, "projection_dim": 768, "initializer_range": 0.02, "initializer_factor": 1.0}
}

var clipAssumed = []string{"num_attention_heads (hidden_size/64)", "hidden_act", "layer_norm_eps"}
