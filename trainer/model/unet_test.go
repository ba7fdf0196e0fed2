package model

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// The full-size configs' parameter counts, from the description alone
// (the reference harness's counts: diffusers' UNet2DConditionModel and the
// seed recipe's inflation).
func TestSDParamCounts(t *testing.T) {
	cases := []struct {
		name            string
		in              int
		opt             UNetOptions
		total, temporal int
	}{
		{"SD-1.5", 4, UNetOptions{}, 859_520_964, 0},
		{"SD-1.5 inpainting", 9, UNetOptions{}, 859_535_364, 0},
		{"SD-1.5 inpainting pseudo-3D", 9, UNetOptions{Pseudo3D: true}, 1_100_578_616, 241_043_252},
		{"SD-1.5 inpainting pseudo-3D joint", 9, UNetOptions{Pseudo3D: true, GroupNorm: GroupNormJoint}, 1_100_578_616, 241_043_252},
	}
	for _, c := range cases {
		net, err := DescribeUNet(SD15UNet(c.in), c.opt)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		total, temporal := net.ParamCount()
		if total != c.total || temporal != c.temporal {
			t.Errorf("%s: %d parameters (%d temporal), want %d (%d)", c.name, total, temporal, c.total, c.temporal)
		}
	}
}

// SD-2 style configs: heads per block, linear proj_in/proj_out, a 1024-wide
// context. The full-size count is SD-2's UNet (865,910,724); a tiny one runs
// the same in the graph and the interpreter.
func TestSD2LinearProjection(t *testing.T) {
	c := SD15UNet(4)
	c.AttentionHeadDim = IntList{5, 10, 20, 20}
	c.UseLinearProjection = true
	c.CrossAttentionDim = 1024
	net, err := DescribeUNet(c, UNetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if total, _ := net.ParamCount(); total != 865_910_724 {
		t.Errorf("SD-2 UNet: %d parameters, want 865910724", total)
	}
	for _, s := range net.Params {
		if strings.HasSuffix(s.Name, "attentions.0.proj_in.weight") && len(s.Shape) != 2 {
			t.Errorf("%s has shape %v, want a linear [C, C]", s.Name, s.Shape)
		}
	}
	tiny := UNetConfig{}
	if tiny, err = ParseUNetConfig([]byte(`{"block_out_channels": [8, 16], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
		"up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "layers_per_block": 1, "norm_num_groups": 4,
		"cross_attention_dim": 12, "attention_head_dim": [2, 4], "use_linear_projection": true, "transformer_layers_per_block": 2}`)); err != nil {
		t.Fatal(err)
	}
	u, err := NewUNet(tiny, UNetOptions{Pseudo3D: true, ContextLen: 5, TemporalHeads: 2}, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range u.Params.TemporalParams() {
		if q.Init == InitZeros || q.Init == InitIdentity {
			initParam(q, rand.New(rand.NewPCG(1, uint64(len(q.Name)))))
		}
	}
	if u.Params.Get("down_blocks.0.attentions.0.transformer_blocks.1.attn_temporal.to_q.weight") == nil {
		t.Fatal("no second transformer block")
	}
	const B, T, H, W = 1, 3, 8, 8
	rng := rand.New(rand.NewPCG(2, 2))
	in := Inputs{Input: randSlice(rng, B*T*4*H*W), Timesteps: []float32{1, 2, 3}, Context: randSlice(rng, B*T*5*12)}
	want, err := InterpretInputs(u.Net, u.Params, B, T, H, W, in)
	if err != nil {
		t.Fatal(err)
	}
	fg, err := BuildNetForward(u.Net, u.Params, B, T, H, W)
	if err != nil {
		t.Fatal(err)
	}
	defer fg.Close()
	if err := fg.SetContext(in.Context); err != nil {
		t.Fatal(err)
	}
	got, err := fg.Predict(in.Input, in.Timesteps)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(got, want); e > 1e-6 {
		t.Errorf("graph and interpreter differ by %.3g", e)
	}
}

// Configs with features this UNet lacks are refused with the field named.
func TestUNetConfigRefusesUnsupported(t *testing.T) {
	for field, cfg := range map[string]string{
		"addition_embed_type": `{"addition_embed_type": "text_time"}`,
		"class_embed_type":    `{"class_embed_type": "timestep"}`,
		"down_block_types":    `{"down_block_types": ["DownBlock3D", "DownBlock2D", "DownBlock2D", "DownBlock2D"]}`,
		"act_fn":              `{"act_fn": "gelu"}`,
		"_class_name":         `{"_class_name": "UNet3DConditionModel"}`,
		"norm_num_groups":     `{"norm_num_groups": 7}`,
	} {
		_, err := ParseUNetConfig([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: error %v, want one naming the field", cfg, err)
		}
	}
	if _, err := ParseUNetConfig([]byte(`{"cross_attention_dim": 768}`)); err != nil {
		t.Errorf("SD-1.5 defaults refused: %v", err)
	}
	if _, err := DescribeUNet(SD15UNet(4), UNetOptions{GroupNorm: GroupNormJoint}); err == nil {
		t.Error("joint group norm accepted for a 2D UNet")
	}
}
