package gpu

import (
	"fmt"
	"math"
	"os"
	"testing/fstest"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Fused (flash) attention for the SD executor's half-precision modes
// (kernels/flash.cu): per head, a block of 128 queries streams the keys in
// tiles with an online softmax, on bfloat16 (or float16) operands
// multiplied on tensor cores with float32 accumulation. q, k, v (and dout)
// are rounded to 16 bits once per layer and pass into a head-major padded
// layout (flashPacked) whose tiles cp.async copies into shared memory while
// the previous tile is multiplied. The forward pass saves each layer's row
// logsumexp and a 16-bit copy of its output (flashSaved); the backward pass
// recomputes P tile by tile, so no positions x positions matrix is stored.
// Long sequences of narrow heads (the top level's 4096 x 4096
// self-attention) take kernels/flash_wide.cu's kernels (32 rows per warp,
// only the head dim rounded up to 8 multiplied); the rest flash.cu's.
// One NVRTC module per operand type, padded head dim and head dim rounded
// up to 8, compiled on first use.

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
	d8   int // the head dim rounded up to 8 (flash_wide.cu multiplies only those)
}

// flashWideMin is the shortest sequence (queries for the forward pass and
// dQ, keys for dK and dV) that takes flash_wide.cu's kernels; they run
// for padded head dims up to flashWideDP and never causal.
const (
	flashWideMin = 512
	flashWideDP  = 64
)

// flashNarrow keeps every attention on flash.cu's kernels
// (PIPELINE_SD_FLASH_NARROW=1, for benchmarks comparing the two).
var flashNarrow = os.Getenv("PIPELINE_SD_FLASH_NARROW") == "1"

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
	wide, err := kernelFS.ReadFile("kernels/flash_wide.cu")
	if err != nil {
		return cuda.ModuleSource{}, err
	}
	bf, typ := 0, "f16"
	if key.bf16 {
		bf, typ = 1, "bf16"
	}
	cfg := fmt.Sprintf("#define FLASH_DP %d\n#define FLASH_D8 %d\n#define FLASH_BF %d\n", key.dp, key.d8, bf)
	// Source concatenates the *.cu files in name order: the defines first.
	return cuda.ModuleSource{Name: fmt.Sprintf("flash-%s-%d-%d", typ, key.dp, key.d8), Files: fstest.MapFS{
		"0_config.cu":   {Data: []byte(cfg)},
		"flash.cu":      {Data: src},
		"flash_wide.cu": {Data: wide},
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

// useFlash reports whether attention layer l runs fused: in both half
// precisions (float16 operands in fp16: its dynamic loss scale sees a
// gradient that overflows them, which the rounding makes inf), the frozen
// layers, and the temporal ones when flashTemporal, unless flashOff, and
// the head dim has a module (not the VAE's single 512-wide head).
func (s *SDNet) useFlash(l model.Layer) bool {
	if !s.prec.Half() || (l.Temporal && !flashTemporal) || s.flashOff || l.Heads <= 0 {
		return false
	}
	sh := s.p.shapes[l.In[0]]
	_, ok := flashDP(sh[len(sh)-1] / l.Heads)
	return ok
}

// flashTemporal runs the temporal (trainable) attention layers fused too in
// the half precisions (PIPELINE_SD_FLASH_TEMPORAL=1); off, they keep the
// float32 products so their gradients keep float32 accuracy.
var flashTemporal = os.Getenv("PIPELINE_SD_FLASH_TEMPORAL") == "1"

// flashCall holds one layer's launch parameters.
type flashCall struct {
	m      *cuda.Module
	a      nn.SeqAttentionShape
	dp     int
	scale  float32
	causal int
}

func (s *SDNet) flashCall(a nn.SeqAttentionShape) (flashCall, error) {
	if err := a.Validate(); err != nil {
		return flashCall{}, err
	}
	dh := a.C / a.Heads
	dp, ok := flashDP(dh)
	if !ok {
		return flashCall{}, fmt.Errorf("gpu: flash attention: head dim %d > %d", dh, flashDims[len(flashDims)-1])
	}
	if rows := int64(a.N) * int64(a.Heads) * int64(max(a.Lq, a.Lk)); rows*int64(dp) >= 1<<31 {
		return flashCall{}, fmt.Errorf("gpu: flash attention: %d rows of %d too many for one launch", rows, dp)
	}
	m, err := s.flashModule(flashKey{bf16: s.prec != FP16, dp: dp, d8: (dh + 7) / 8 * 8})
	if err != nil {
		return flashCall{}, err
	}
	c := flashCall{m: m, a: a, dp: dp, scale: float32(1 / math.Sqrt(float64(dh)))}
	if a.Causal {
		c.causal = 1
	}
	return c, nil
}

func (c flashCall) blocks(l int) int { return c.a.N * c.a.Heads * ((l + 127) / 128) }

// wide reports whether sequences of length l (queries for the forward
// pass and dQ, keys for dK and dV) take flash_wide.cu's kernels.
func (c flashCall) wide(l int) bool {
	return !flashNarrow && c.causal == 0 && c.dp <= flashWideDP && l >= flashWideMin
}

// kernel is the name and grid of kernel name (flash.cu's) or its
// flash_wide.cu variant (name + "_w") for sequences of length l.
func (c flashCall) kernel(name string, l int) (string, int) {
	if c.wide(l) {
		return name + "_w", c.a.N * c.a.Heads * ((l + flashWideRows - 1) / flashWideRows)
	}
	return name, c.blocks(l)
}

// flashWideRows is FW_ROWS of flash_wide.cu: a block's queries or keys.
const flashWideRows = 256

func (c flashCall) scale2() float32 { return c.scale * math.Log2E }

// packedLen is the 16-bit length of a packed (N, H, l, dp) operand.
func (c flashCall) packedLen(l int) int { return c.a.N * c.a.Heads * l * c.dp }

// flashPacked is a layer's operands in 16 bits, head-major and padded
// (N, H, L, dp), in one allocation.
type flashPacked struct {
	buf        *cuda.Tensor
	q, k, v, o uintptr // o: dout (backward only)
}

func (p *flashPacked) free() { p.buf.Free() }

// flashPack rounds q, k, v into one packed buffer, with room for dout
// (flash_pack_dot packs it) when withOut.
func (s *SDNet) flashPack(c flashCall, q, k, v *cuda.Tensor, withOut bool) (*flashPacked, error) {
	a := c.a
	nq, nk := c.packedLen(a.Lq), c.packedLen(a.Lk)
	n := nq + 2*nk // multiples of 16 (dp is): every part 16-byte aligned
	if withOut {
		n += nq
	}
	buf, err := s.newHalf(n)
	if err != nil {
		return nil, err
	}
	p := &flashPacked{buf: buf, q: buf.Ptr()}
	p.k = p.q + uintptr(nq)*bf16Size
	p.v = p.k + uintptr(nk)*bf16Size
	p.o = p.v + uintptr(nk)*bf16Size
	for _, x := range []struct {
		dst uintptr
		src *cuda.Tensor
		l   int
	}{{p.q, q, a.Lq}, {p.k, k, a.Lk}, {p.v, v, a.Lk}} {
		rows := a.N * a.Heads * x.l
		if err := c.m.Launch("flash_pack", s.dev.GridFor(int64(rows*c.dp/2)), cuda.PtrArg(x.dst), cuda.TensorArg(x.src),
			cuda.IntArg(rows), cuda.IntArg(x.l), cuda.IntArg(a.C), cuda.IntArg(a.Heads)); err != nil {
			buf.Free()
			return nil, err
		}
	}
	return p, nil
}

// flashRun packs q, k, v and writes y and, when lse and o are not nil,
// the saved results.
func (s *SDNet) flashRun(c flashCall, y, o, lse, q, k, v *cuda.Tensor) error {
	p, err := s.flashPack(c, q, k, v, false)
	if err != nil {
		return err
	}
	defer p.free()
	a := c.a
	name, grid := c.kernel("flash_fwd", a.Lq)
	return c.m.Launch(name, grid, cuda.TensorArg(y), cuda.TensorArg(o), cuda.TensorArg(lse),
		cuda.PtrArg(p.q), cuda.PtrArg(p.k), cuda.PtrArg(p.v), cuda.IntArg(a.Lq), cuda.IntArg(a.Lk), cuda.IntArg(a.C),
		cuda.IntArg(a.Heads), cuda.F32Arg(c.scale2()), cuda.IntArg(c.causal))
}

// newFlashSaved allocates a layer's logsumexp and 16-bit (packed) output.
func (s *SDNet) newFlashSaved(c flashCall) (*flashSaved, error) {
	a := c.a
	lse, err := s.dev.NewTensor(a.N * a.Heads * a.Lq)
	if err != nil {
		return nil, err
	}
	o, err := s.newHalf(c.packedLen(a.Lq))
	if err != nil {
		lse.Free()
		return nil, err
	}
	return &flashSaved{lse: lse, o: o}, nil
}

// flashForward is layer i's attention; a training pass keeps what its
// backward pass needs.
func (s *SDNet) flashForward(i int, l model.Layer, y, q, k, v *cuda.Tensor) error {
	c, err := s.flashCall(s.attnShape(q, k, l.Heads, l.Causal))
	if err != nil {
		return err
	}
	if s.eval || (s.noSave && !s.keepsAttention(i)) || !s.p.backward[i] { // noSave: a checkpointed step's first pass
		return s.flashRun(c, y, nil, nil, q, k, v)
	}
	if kept, err := s.keptAttention(i, y); kept { // sd_ckpt_attn.go
		return err
	}
	f := s.flashState()
	if old := f.saved[i]; old != nil {
		old.free()
		delete(f.saved, i)
	}
	sv, err := s.newFlashSaved(c)
	if err != nil {
		return err
	}
	f.saved[i] = sv
	return s.flashRun(c, y, sv.o, sv.lse, q, k, v)
}

// flashBackward writes dq, dk, dv (nil ones skipped) from dout, with the
// forward pass's saved results (recomputed when there are none).
func (s *SDNet) flashBackward(i int, l model.Layer, dq, dk, dv, dout, q, k, v *cuda.Tensor) error {
	a := s.attnShape(q, k, l.Heads, l.Causal)
	c, err := s.flashCall(a)
	if err != nil {
		return err
	}
	f := s.flashState()
	sv := f.saved[i]
	delete(f.saved, i)
	if sv == nil {
		if sv, err = s.newFlashSaved(c); err != nil {
			return err
		}
		y, err := s.dev.NewTensor(a.QLen())
		if err != nil {
			sv.free()
			return err
		}
		err = s.flashRun(c, y, sv.o, sv.lse, q, k, v)
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
	p, err := s.flashPack(c, q, k, v, true)
	if err != nil {
		return err
	}
	defer p.free()
	dd, err := s.dev.NewTensor(a.N * a.Heads * a.Lq)
	if err != nil {
		return err
	}
	defer dd.Free()
	rows := a.N * a.Heads * a.Lq
	if err := c.m.Launch("flash_pack_dot", s.k.rowGrid(int64(rows+7)/8), cuda.PtrArg(p.o), cuda.TensorArg(dd), cuda.TensorArg(dout),
		cuda.TensorArg(sv.o), cuda.IntArg(rows), cuda.IntArg(a.Lq), cuda.IntArg(a.C), cuda.IntArg(a.Heads)); err != nil {
		return err
	}
	args := func(d0, d1 *cuda.Tensor) []cuda.Arg {
		return []cuda.Arg{cuda.TensorArg(d0), cuda.TensorArg(d1), cuda.PtrArg(p.q), cuda.PtrArg(p.k), cuda.PtrArg(p.v),
			cuda.PtrArg(p.o), cuda.TensorArg(sv.lse), cuda.TensorArg(dd), cuda.IntArg(a.Lq), cuda.IntArg(a.Lk),
			cuda.IntArg(a.C), cuda.IntArg(a.Heads), cuda.F32Arg(c.scale2()), cuda.F32Arg(c.scale), cuda.IntArg(c.causal)}
	}
	if dq != nil {
		// flash_bwd_dq takes (dq, q, k, v, ...): the kv argument list without its second output
		qa := append([]cuda.Arg{cuda.TensorArg(dq)}, args(nil, nil)[2:]...)
		name, grid := c.kernel("flash_bwd_dq", a.Lq)
		if err := c.m.Launch(name, grid, qa...); err != nil {
			return err
		}
	}
	switch {
	case dk != nil && dv != nil && c.dp <= flashFusedKV:
		name, grid := c.kernel("flash_bwd_dkv", a.Lk)
		return c.m.Launch(name, grid, args(dk, dv)...)
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
