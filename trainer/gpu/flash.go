package gpu

import (
	"fmt"
	"math"
	"testing/fstest"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Fused (flash) attention for the SD executor's half-precision mode
// (kernels/flash.cu): per head, a block of 128 queries streams the keys in
// tiles with an online softmax, operands rounded to bfloat16 (or float16)
// on their way into shared memory and multiplied on tensor cores with
// float32 accumulation. The forward pass saves each layer's row
// logsumexp and a 16-bit copy of its output (flashSaved); the backward pass
// recomputes P tile by tile, so no positions x positions matrix is stored.
// One NVRTC module per operand type and padded head dim, compiled on
// first use.

// flashDims are the padded head dims with a module (multiples of 16).
var flashDims = []int{16, 32, 48, 64, 80, 128, 160}

// flashDP is head dim dh rounded up to a compiled one (false: too wide).
func flashDP(dh int) (int, bool) {
	for _, d := range flashDims {
		if dh <= d {
			return d, true
		}
	}
	return 0, false
}

// flashFusedKV is the widest padded head dim whose dK and dV come from
// one kernel (wider ones take two: registers).
const flashFusedKV = 80

type flashKey struct {
	bf16 bool
	dp   int
}

// flashSaved is what a forward pass keeps for its backward pass.
type flashSaved struct{ lse, o *cuda.Tensor }

func (f *flashSaved) free() { f.lse.Free(); f.o.Free() }

// flashState is an SDNet's flash modules and saved forward results.
type flashState struct {
	mods  map[flashKey]*cuda.Module
	saved map[int]*flashSaved // by layer
}

// release frees the saved forward results (nil-safe).
func (f *flashState) release() {
	if f == nil {
		return
	}
	for i, sv := range f.saved {
		sv.free()
		delete(f.saved, i)
	}
}

// flashSource is the module of one operand type and padded head dim.
func flashSource(key flashKey) (cuda.ModuleSource, error) {
	src, err := kernelFS.ReadFile("kernels/flash.cu")
	if err != nil {
		return cuda.ModuleSource{}, err
	}
	bf, typ := 0, "f16"
	if key.bf16 {
		bf, typ = 1, "bf16"
	}
	cfg := fmt.Sprintf("#define FLASH_DP %d\n#define FLASH_BF %d\n", key.dp, bf)
	// Source concatenates the *.cu files in name order: the defines first.
	return cuda.ModuleSource{Name: fmt.Sprintf("flash-%s-%d", typ, key.dp), Files: fstest.MapFS{
		"0_config.cu": {Data: []byte(cfg)},
		"flash.cu":    {Data: src},
	}}, nil
}

func (s *SDNet) flashState() *flashState {
	if s.fl == nil {
		s.fl = &flashState{mods: map[flashKey]*cuda.Module{}, saved: map[int]*flashSaved{}}
	}
	return s.fl
}

func (s *SDNet) flashModule(key flashKey) (*cuda.Module, error) {
	f := s.flashState()
	if m := f.mods[key]; m != nil {
		return m, nil
	}
	src, err := flashSource(key)
	if err != nil {
		return nil, err
	}
	m, err := s.dev.LoadModule(src)
	if err != nil {
		return nil, fmt.Errorf("gpu: flash attention kernels: %w", err)
	}
	f.mods[key] = m
	return m, nil
}

// useFlash reports whether attention layer l runs fused: the layers the
// half precisions run on 16-bit operands (halfAttention), unless flashOff,
// and the head dim has a module (not the VAE's single 512-wide head).
func (s *SDNet) useFlash(l model.Layer) bool {
	if !s.halfAttention(l) || s.flashOff || l.Heads <= 0 {
		return false
	}
	sh := s.p.shapes[l.In[0]]
	_, ok := flashDP(sh[len(sh)-1] / l.Heads)
	return ok
}

// flashCall holds one layer's launch parameters.
type flashCall struct {
	m      *cuda.Module
	a      nn.SeqAttentionShape
	scale  float32
	causal int
	vec    int
}

func (s *SDNet) flashCall(a nn.SeqAttentionShape, ts ...*cuda.Tensor) (flashCall, error) {
	if err := a.Validate(); err != nil {
		return flashCall{}, err
	}
	dh := a.C / a.Heads
	dp, ok := flashDP(dh)
	if !ok {
		return flashCall{}, fmt.Errorf("gpu: flash attention: head dim %d > %d", dh, flashDims[len(flashDims)-1])
	}
	m, err := s.flashModule(flashKey{bf16: s.prec != FP16, dp: dp})
	if err != nil {
		return flashCall{}, err
	}
	c := flashCall{m: m, a: a, scale: float32(1 / math.Sqrt(float64(dh)))}
	if a.Causal {
		c.causal = 1
	}
	if dh%4 == 0 && a.C%4 == 0 {
		c.vec = 1
		for _, t := range ts {
			if t != nil && t.Ptr()%16 != 0 {
				c.vec = 0
			}
		}
	}
	return c, nil
}

func (c flashCall) blocks(l int) int { return c.a.N * c.a.Heads * ((l + 127) / 128) }

func (c flashCall) scale2() float32 { return c.scale * math.Log2E }

// forward writes y and, when lse and o are not nil, the saved results.
func (c flashCall) forward(y, o, lse, q, k, v *cuda.Tensor) error {
	a := c.a
	return c.m.Launch("flash_fwd", c.blocks(a.Lq), cuda.TensorArg(y), cuda.TensorArg(o), cuda.TensorArg(lse),
		cuda.TensorArg(q), cuda.TensorArg(k), cuda.TensorArg(v), cuda.IntArg(a.Lq), cuda.IntArg(a.Lk), cuda.IntArg(a.C),
		cuda.IntArg(a.Heads), cuda.F32Arg(c.scale2()), cuda.IntArg(c.causal), cuda.IntArg(c.vec))
}

// newSaved allocates a layer's logsumexp and 16-bit output.
func (s *SDNet) newFlashSaved(a nn.SeqAttentionShape) (*flashSaved, error) {
	lse, err := s.dev.NewTensor(a.N * a.Heads * a.Lq)
	if err != nil {
		return nil, err
	}
	o, err := s.newHalf(a.QLen())
	if err != nil {
		lse.Free()
		return nil, err
	}
	return &flashSaved{lse: lse, o: o}, nil
}

// flashForward is layer i's attention; a training pass keeps what its
// backward pass needs.
func (s *SDNet) flashForward(i int, l model.Layer, y, q, k, v *cuda.Tensor) error {
	a := s.attnShape(q, k, l.Heads, l.Causal)
	c, err := s.flashCall(a, y, q, k, v)
	if err != nil {
		return err
	}
	if s.eval || s.noSave || !s.p.backward[i] { // noSave: a checkpointed step's first pass
		return c.forward(y, nil, nil, q, k, v)
	}
	f := s.flashState()
	if old := f.saved[i]; old != nil {
		old.free()
		delete(f.saved, i)
	}
	sv, err := s.newFlashSaved(a)
	if err != nil {
		return err
	}
	f.saved[i] = sv
	return c.forward(y, sv.o, sv.lse, q, k, v)
}

// flashBackward writes dq, dk, dv (nil ones skipped) from dout, with the
// forward pass's saved results (recomputed when there are none).
func (s *SDNet) flashBackward(i int, l model.Layer, dq, dk, dv, dout, q, k, v *cuda.Tensor) error {
	a := s.attnShape(q, k, l.Heads, l.Causal)
	c, err := s.flashCall(a, dq, dk, dv, dout, q, k, v)
	if err != nil {
		return err
	}
	f := s.flashState()
	sv := f.saved[i]
	delete(f.saved, i)
	if sv == nil {
		if sv, err = s.newFlashSaved(a); err != nil {
			return err
		}
		y, err := s.dev.NewTensor(a.QLen())
		if err != nil {
			sv.free()
			return err
		}
		err = c.forward(y, sv.o, sv.lse, q, k, v)
		y.Free()
		if err != nil {
			sv.free()
			return err
		}
	}
	defer sv.free()
	if dq == nil && dk == nil && dv == nil {
		return nil
	}
	dd, err := s.dev.NewTensor(a.N * a.Heads * a.Lq)
	if err != nil {
		return err
	}
	defer dd.Free()
	if err := c.m.Launch("flash_bwd_dot", s.k.rowGrid(int64(a.N*a.Heads*a.Lq+7)/8), cuda.TensorArg(dd), cuda.TensorArg(dout),
		cuda.TensorArg(sv.o), cuda.IntArg(a.N), cuda.IntArg(a.Lq), cuda.IntArg(a.C), cuda.IntArg(a.Heads)); err != nil {
		return err
	}
	args := func(d0, d1 *cuda.Tensor) []cuda.Arg {
		return []cuda.Arg{cuda.TensorArg(d0), cuda.TensorArg(d1), cuda.TensorArg(q), cuda.TensorArg(k), cuda.TensorArg(v),
			cuda.TensorArg(dout), cuda.TensorArg(sv.lse), cuda.TensorArg(dd), cuda.IntArg(a.Lq), cuda.IntArg(a.Lk),
			cuda.IntArg(a.C), cuda.IntArg(a.Heads), cuda.F32Arg(c.scale2()), cuda.F32Arg(c.scale), cuda.IntArg(c.causal),
			cuda.IntArg(c.vec)}
	}
	if dq != nil {
		// flash_bwd_dq takes (dq, q, k, v, ...): the kv argument list without its second output
		qa := append([]cuda.Arg{cuda.TensorArg(dq)}, args(nil, nil)[2:]...)
		if err := c.m.Launch("flash_bwd_dq", c.blocks(a.Lq), qa...); err != nil {
			return err
		}
	}
	dp, _ := flashDP(a.C / a.Heads)
	switch {
	case dk != nil && dv != nil && dp <= flashFusedKV:
		return c.m.Launch("flash_bwd_dkv", c.blocks(a.Lk), args(dk, dv)...)
	default:
		if dk != nil {
			if err := c.m.Launch("flash_bwd_dk", c.blocks(a.Lk), args(dk, nil)...); err != nil {
				return err
			}
		}
		if dv != nil {
			return c.m.Launch("flash_bwd_dv", c.blocks(a.Lk), args(nil, dv)...)
		}
	}
	return nil
}
