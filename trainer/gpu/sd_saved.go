package gpu

import (
	"fmt"

	"github.com/timelapse-ml/pipeline/trainer/cuda"
	"github.com/timelapse-ml/pipeline/trainer/model"
	"github.com/timelapse-ml/pipeline/trainer/nn"
)

// Saved values in 16 bits without checkpointing (the half precisions): a
// training step that keeps every value its backward pass reads (the
// inputs of the norms, activations, GEGLUs, attention layers and of the
// trainable layers' weight gradients) packs each one of at least
// SDOptions.SavedPackMin elements into a 16-bit copy after its last
// forward read and frees its float32 buffer; the backward pass widens it
// back before the first layer whose backward reads it (its float32 copy
// then lives until its last backward reader, as before). Autocast keeps
// such values in 16 bits too (its ops' outputs are 16-bit tensors).
//
// The type: bfloat16 (float32's range, 8 significant bits), except in
// the fp16 mode for values whose every backward reader rounds them to
// float16 anyway (the fused attention's q, k, v; the inputs of the
// trainable linears and temporal convolutions on 16-bit operands,
// sd_t16.go): there float16 is what the backward used before, so the
// packing changes nothing. The temporal attention's q, k and v stay
// float32 (its attention runs in float32: the trainable layers' path).

// DefaultSDSavedPackMin is SDOptions.SavedPackMin's default: the saved
// values of at least 16M elements (64 MiB in float32). At SD-1.5's full
// size (B=1, T=25, 64x64) that packs 21.8 of the 33.7 GiB of float32 values
// the backward reads and the plan's peak falls from 40.7 to 30.8 GiB; 1M
// would pack 30.4 GiB for 26.5 (a pack and unpack move 12 bytes per
// element: about 5 ms per 7 GiB packed on an H200). Measured on an H200
// (2026-12-02, bf16, AdamW on the device, before the fused
// GroupNorm+SiLU): 31.30 GiB (40.52 before), 407.4 ms per step.
const DefaultSDSavedPackMin = 1 << 24

// savedPlan is the packing schedule of a training step without
// checkpointing.
type savedPlan struct {
	typ      []cuda.DataType // per value: its 16-bit type, TypeF32 when kept whole
	packAt   [][]int         // per layer: values to pack after its forward
	unpackAt [][]int         // per layer: values to widen before its backward
	// direct[v]: every backward reader of v reads its 16-bit copy itself
	// (no unpack); dropAt[l]: direct values whose copy goes after layer l's
	// backward (their last backward reader)
	direct []bool
	dropAt [][]int
}

// sdSavedTypes picks the values a training step of plan p in precision
// prec packs (TypeF32: kept whole); fused says which attention layers run
// fused.
func sdSavedTypes(p *sdPlan, prec Precision, min int, fused func(model.Layer) bool) []cuda.DataType {
	net := p.net
	out := make([]cuda.DataType, len(net.Values))
	if !prec.Half() || min < 0 {
		return out
	}
	read, whole, lossless := make([]bool, len(out)), make([]bool, len(out)), make([]bool, len(out))
	for v := range lossless {
		lossless[v] = true
	}
	for i, l := range net.Layers {
		if !p.backward[i] {
			continue
		}
		for j, v := range l.In {
			if !p.saves[i][j] {
				continue
			}
			read[v] = true
			switch {
			case l.Kind == model.SeqAttention && l.Temporal && !fused(l):
				whole[v] = true
			case l.Kind == model.SeqAttention && fused(l):
			case (l.Kind == model.Linear || l.Kind == model.TemporalConv) && t16Kind(l.Kind, prec):
			default:
				lossless[v] = false
			}
		}
	}
	for v := range out {
		if !read[v] || whole[v] || p.persistent[v] || numel(p.shapes[v]) < max(1, min) {
			continue
		}
		out[v] = cuda.TypeBF16
		if prec == FP16 && lossless[v] {
			out[v] = cuda.TypeF16
		}
	}
	return out
}

// t16Kind reports whether a trainable layer of this kind runs on 16-bit
// operands in prec (SDNet.t16, for a layer whose weight is trainable).
func t16Kind(k model.LayerKind, prec Precision) bool {
	if !temporal16 || !prec.Half() {
		return false
	}
	if k == model.Linear {
		return t16Linear[prec]
	}
	return t16Conv
}

// newSavedPlan schedules the packing of the values typ packs in precision
// prec.
func newSavedPlan(p *sdPlan, typ []cuda.DataType, prec Precision) *savedPlan {
	nl, nv := len(p.net.Layers), len(typ)
	sp := &savedPlan{typ: typ, packAt: make([][]int, nl), unpackAt: make([][]int, nl), direct: make([]bool, nv), dropAt: make([][]int, nl)}
	lastFwd, firstBwd, lastBwd := make([]int, nv), make([]int, nv), make([]int, nv)
	direct := savedDirect(p, typ, prec)
	for v := range lastFwd {
		lastFwd[v], firstBwd[v], lastBwd[v] = -1, -1, -1
	}
	for i, l := range p.net.Layers {
		for j, v := range l.In {
			lastFwd[v] = i
			if p.backward[i] && p.saves[i][j] {
				if firstBwd[v] < 0 {
					lastBwd[v] = i
				}
				firstBwd[v] = i
			}
		}
	}
	any := false
	for v, t := range typ {
		if t == cuda.TypeF32 || lastFwd[v] < 0 || firstBwd[v] < 0 {
			continue
		}
		sp.packAt[lastFwd[v]] = append(sp.packAt[lastFwd[v]], v)
		if direct[v] {
			sp.direct[v] = true
			sp.dropAt[lastBwd[v]] = append(sp.dropAt[lastBwd[v]], v)
		} else {
			sp.unpackAt[firstBwd[v]] = append(sp.unpackAt[firstBwd[v]], v)
		}
		any = true
	}
	if !any {
		return nil
	}
	return sp
}

// planSaved plans the packing of a training step without checkpointing
// (again when flashOff changed).
func (s *SDNet) planSaved() {
	if s.svPlanned && s.svFlash == s.flashOff {
		return
	}
	s.svPlanned, s.svFlash = true, s.flashOff
	s.sv = newSavedPlan(s.p, sdSavedTypes(s.p, s.prec, s.savedMin, s.useFlash), s.prec)
}

// savedDirect says which packed values every backward reader takes in
// 16 bits itself: a GEGLU's input (bfloat16: sd_geglu_bwd_bf16), and
// inputs of trainable linears and temporal convolutions on 16-bit
// operands packed in the precision's own type (their weight gradients'
// operands; not the temporal convolutions of tconv_fast.go, which
// convert their float32 input themselves). Their forward passes reuse
// the copy too: a GEGLU writes it beside its output (sd_geglu_keep), a
// 16-bit product keeps the copy of its input it makes anyway.
func savedDirect(p *sdPlan, typ []cuda.DataType, prec Precision) []bool {
	direct, seen := make([]bool, len(typ)), make([]bool, len(typ))
	for i, l := range p.net.Layers {
		if !p.backward[i] {
			continue
		}
		for j, v := range l.In {
			if !p.saves[i][j] || typ[v] == cuda.TypeF32 {
				continue
			}
			ok := l.Kind == model.GEGLU && typ[v] == cuda.TypeBF16 ||
				(l.Kind == model.Linear || l.Kind == model.TemporalConv && !tconvFastOK(planTconvShape(p, l))) &&
					t16Kind(l.Kind, prec) && typ[v] == prec.dataType()
			direct[v] = ok && (direct[v] || !seen[v])
			seen[v] = true
		}
	}
	return direct
}

// planTconvShape is temporal convolution l's shape from the plan's
// value shapes (SDNet.tconvShape).
func planTconvShape(p *sdPlan, l model.Layer) nn.TemporalConvShape {
	in, out := p.shapes[l.In[0]], p.shapes[l.Out]
	return nn.TemporalConvShape{B: p.B, T: p.T, C: in[1], K: out[1], P: in[2] * in[3]}
}

// savedHalf is the 16-bit copy of value v a step keeps for its backward
// readers when they take it directly (nil: none, or not of type t).
func (s *SDNet) savedHalf(v int, t cuda.DataType) *cuda.Tensor {
	if s.sv == nil || s.eval || s.ckSeg != ckptOff || !s.sv.direct[v] || s.sv.typ[v] != t {
		return nil
	}
	return s.packed[v]
}

// halfOf returns value v (x) in the 16-bit type t: the kept copy when there
// is one, else a fresh one, which the forward pass of a training step keeps
// when v's backward readers take it directly (free releases it otherwise).
func (s *SDNet) halfOf(v int, x *cuda.Tensor, t cuda.DataType) (h *cuda.Tensor, free func(), err error) {
	if h := s.savedHalf(v, t); h != nil {
		return h, func() {}, nil
	}
	if x == nil {
		return nil, nil, fmt.Errorf("value %d was freed and has no 16-bit copy", v)
	}
	if h, err = s.toHalfOf(x, t); err != nil {
		return nil, nil, err
	}
	if s.keepsDirect(v, t) && s.vals[v] == x {
		s.packed[v] = h
		return h, func() {}, nil
	}
	return h, h.Free, nil
}

// keepsDirect: the forward pass of a training step keeps a 16-bit copy of
// type t of value v for its backward readers.
func (s *SDNet) keepsDirect(v int, t cuda.DataType) bool {
	return s.sv != nil && !s.eval && s.ckSeg == ckptOff && s.sv.direct[v] && s.sv.typ[v] == t && s.packed[v] == nil
}

// gegluForward is layer l's GEGLU; it writes the bfloat16 copy of its
// input beside when the backward takes it so.
func (s *SDNet) gegluForward(l model.Layer, y, x *cuda.Tensor) error {
	rows, _ := s.rowsOf(l.Out)
	f := s.p.net.Values[l.Out].Channels
	v := l.In[0]
	if !s.keepsDirect(v, cuda.TypeBF16) {
		return s.k.geglu(y.Ptr(), x.Ptr(), int64(rows), f)
	}
	h, err := s.dev.NewHalf(x.Len())
	if err != nil {
		return err
	}
	if err := s.k.launch("sd_geglu_keep", s.k.gridFor(int64(rows)*int64(f)), cuda.TensorArg(y), cuda.TensorArg(h), cuda.TensorArg(x),
		cuda.Int64Arg(int64(rows)), cuda.IntArg(f)); err != nil {
		h.Free()
		return err
	}
	s.packed[v] = h
	return nil
}

// gegluBackwardSaved is layer l's GEGLU backward from the bfloat16 copy of
// its input, when the step kept one (false: none).
func (s *SDNet) gegluBackwardSaved(l model.Layer, dy *cuda.Tensor, dataGrad func(int, func(*cuda.Tensor) error) error) (bool, error) {
	h := s.savedHalf(l.In[0], cuda.TypeBF16)
	if h == nil {
		return false, nil
	}
	rows, _ := s.rowsOf(l.Out)
	f := s.p.net.Values[l.Out].Channels
	return true, dataGrad(0, func(dx *cuda.Tensor) error {
		return s.k.launch("sd_geglu_bwd_bf16", s.k.gridFor(int64(rows)*int64(f)), cuda.TensorArg(dx), cuda.TensorArg(dy), cuda.TensorArg(h),
			cuda.Int64Arg(int64(rows)), cuda.IntArg(f))
	})
}

// dropSaved frees the 16-bit copies whose last backward reader was layer i.
func (s *SDNet) dropSaved(i int) {
	if s.sv == nil {
		return
	}
	for _, v := range s.sv.dropAt[i] {
		if h := s.packed[v]; h != nil {
			h.Free()
			delete(s.packed, v)
		}
	}
}

// packSaved packs the saved values layer i's training forward read last.
func (s *SDNet) packSaved(i int) error {
	if s.sv == nil || s.eval || s.ckSeg != ckptOff {
		return nil
	}
	for _, v := range s.sv.packAt[i] {
		t := s.vals[v]
		if t == nil {
			continue
		}
		if s.packed[v] == nil { // else its forward readers kept one
			h, err := s.toHalfOf(t, s.sv.typ[v])
			if err != nil {
				return fmt.Errorf("gpu: pack saved value %d: %w", v, err)
			}
			s.packed[v] = h
		}
		t.Free()
		s.vals[v] = nil
	}
	return nil
}

// unpackSaved widens the packed values layer i's backward reads first.
func (s *SDNet) unpackSaved(i int) error {
	if s.sv == nil {
		return nil
	}
	for _, v := range s.sv.unpackAt[i] {
		h := s.packed[v]
		if h == nil || s.vals[v] != nil {
			continue
		}
		t, err := s.dev.NewTensor(s.p.shapes[v]...)
		if err != nil {
			return err
		}
		if err := s.dev.FromHalf(t, h, s.sv.typ[v]); err != nil {
			t.Free()
			return fmt.Errorf("gpu: unpack saved value %d: %w", v, err)
		}
		s.vals[v] = t
		h.Free()
		delete(s.packed, v)
	}
	return nil
}

// SDSavedPacking is the element size (2, or 0: kept whole) of each value
// of net a training step without checkpointing in precision prec packs
// after its last forward read with the options' defaults, and whether its
// backward readers take the 16-bit copy directly (trainer/plan's
// Job.SavedBytes and SavedDirect); nil when it packs none.
func SDSavedPacking(net *model.Net, B, T, H, W int, trainable func(model.ParamSpec) bool, prec Precision, checkpointing bool) (bytes func(v int) int, direct func(v int) bool, err error) {
	if checkpointing || !prec.Half() {
		return nil, nil, nil
	}
	p, err := newSDPlan(net, B, T, H, W, trainable)
	if err != nil {
		return nil, nil, err
	}
	sp := newSavedPlan(p, sdSavedTypes(p, prec, DefaultSDSavedPackMin, (&SDNet{p: p, prec: prec}).useFlash), prec)
	if sp == nil {
		return nil, nil, nil
	}
	return sp.bytes, sp.isDirect, nil
}

// SDFusedNormSiLU reports which layers of net a training step runs as a
// GroupNorm fused with the SiLU after it (sd_gnsilu.go: the norm's output
// is never stored; trainer/plan's Job.FusedNormSiLU).
func SDFusedNormSiLU(net *model.Net) func(i int) bool {
	return func(i int) bool {
		l := net.Layers[i]
		return sdGNSiLU && l.Kind == model.GroupNorm && !l.Joint && l.Out != net.Output && fusable(net, i)
	}
}

// bytes is a value's packed element size (0: kept whole).
func (sp *savedPlan) bytes(v int) int {
	if sp.typ[v] == cuda.TypeF32 {
		return 0
	}
	return 2
}

func (sp *savedPlan) isDirect(v int) bool { return sp.direct[v] }
