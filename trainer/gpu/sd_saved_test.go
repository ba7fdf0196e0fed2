package gpu

import (
	"testing"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
)

// The saved values a full-size step without checkpointing packs
// (sd_saved.go): only values a backward reads, of at least the minimum
// size, never the temporal attention's q, k, v; bfloat16 in bf16; in fp16
// float16 for the fused attention's operands (rounded to float16 by it
// anyway) and bfloat16 for the norms' inputs; nothing in float32 or with
// a negative minimum.
func TestSDSavedTypes(t *testing.T) {
	net, err := model.DescribeUNet(model.SD15UNet(9), model.UNetOptions{Pseudo3D: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := newSDPlan(net, 1, 25, 64, 64, func(q model.ParamSpec) bool { return q.Temporal })
	if err != nil {
		t.Fatal(err)
	}
	for _, prec := range []Precision{BF16, FP16} {
		s := &SDNet{p: p, prec: prec}
		typ := sdSavedTypes(p, prec, DefaultSDSavedPackMin, s.useFlash)
		kinds := map[string]int{}
		for i, l := range net.Layers {
			for j, v := range l.In {
				if !p.backward[i] || !p.saves[i][j] {
					continue
				}
				big := numel(p.shapes[v]) >= DefaultSDSavedPackMin
				switch {
				case l.Kind == model.SeqAttention && l.Temporal:
					if typ[v] != cuda.TypeF32 {
						t.Errorf("%s: temporal attention input %d packed", prec, v)
					}
				case !big:
					if typ[v] != cuda.TypeF32 {
						t.Errorf("%s: value %d of %d elements packed", prec, v, numel(p.shapes[v]))
					}
				case l.Kind == model.SeqAttention && prec == FP16:
					if typ[v] != cuda.TypeF16 {
						t.Errorf("fp16: attention input %d packed as %d", v, typ[v])
					}
				case l.Kind == model.GroupNorm || l.Kind == model.LayerNorm || l.Kind == model.GEGLU || prec == BF16:
					if typ[v] != cuda.TypeBF16 {
						t.Errorf("%s: %s input %d packed as %d", prec, l.Kind, v, typ[v])
					}
				}
				kinds[string(l.Kind)+map[cuda.DataType]string{cuda.TypeF32: " f32", cuda.TypeBF16: " bf16", cuda.TypeF16: " f16"}[typ[v]]]++
			}
		}
		t.Logf("%s: backward reads by kind and packed type: %v", prec, kinds)
		sp := newSavedPlan(p, typ, prec)
		if sp == nil {
			t.Fatalf("%s: nothing packed", prec)
		}
		// read in 16 bits by the backward itself: the GEGLUs' inputs, the
		// temporal convolutions' (and in fp16 the temporal linears')
		// (not the temporal convolutions of tconv_fast.go: float32 inputs)
		direct, slowTconv := map[string]int{}, 0
		for i, l := range net.Layers {
			v := l.In[0]
			if !p.backward[i] || !p.saves[i][0] {
				continue
			}
			if sp.direct[v] {
				direct[string(l.Kind)]++
			}
			if l.Kind == model.TemporalConv && typ[v] != cuda.TypeF32 && !tconvFastOK(planTconvShape(p, l)) {
				slowTconv++
			}
		}
		t.Logf("%s: packed values read directly, by reader: %v", prec, direct)
		want := map[string]int{"geglu": kinds["geglu bf16"], "temporal_conv": slowTconv, "linear": kinds["linear f16"]}
		for k, n := range want {
			if direct[k] != n || n == 0 && k == "geglu" {
				t.Errorf("%s: %d %s inputs read directly, want %d", prec, direct[k], k, n)
			}
		}
		for v, d := range sp.direct {
			if d && typ[v] == cuda.TypeF32 {
				t.Errorf("%s: direct value %d is not packed", prec, v)
			}
		}
	}
	for _, c := range []struct {
		prec Precision
		min  int
	}{{TF32, 1}, {FP32, 1}, {BF16, -1}} {
		if sp := newSavedPlan(p, sdSavedTypes(p, c.prec, c.min, func(model.Layer) bool { return true }), c.prec); sp != nil {
			t.Errorf("%s, minimum %d: values packed", c.prec, c.min)
		}
	}
}
